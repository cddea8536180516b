"""ARC (RFC 8617): the chain of custody a forwarder adds, verified on arrival.

A forwarder (a mailing list, a forwarding mailbox, our own aliases) breaks SPF, and
sometimes DKIM, for the next hop. If it verified the message first, it adds an ARC set:
its Authentication-Results (ARC-Authentication-Results), a signature over the message
(ARC-Message-Signature) and a seal over all ARC sets so far (ARC-Seal). ``verify`` checks
that chain with dkimpy and returns the ``arc=`` entry of our Authentication-Results
(RFC 8617 §10.1, RFC 8601 §2.7). Sealing what we forward is done where the keys are, in
``appliance.mta.dkim``.

A valid chain proves who handled the message, not that the author is honest: it counts as
evidence only when its last sealer is one the administrator trusts (``[mda]
arc_trusted_sealers``); then SPF and DMARC failures caused by forwarding are not scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import dkim

from appliance.mda import authresults
from appliance.mda.dnsquery import Resolver, Unavailable
from appliance.mime import header_end


@dataclass(frozen=True)
class ArcResult:
    """The outcome of checking one message's ARC chain."""

    result: str  # "pass", "fail", "none" (no ARC set) or "temperror" (DNS)
    sealer: str = ""  # d= of the newest ARC-Seal: who handed the message to us
    oldest_pass: int = 0  # RFC 8617 §5.2: the oldest instance whose AMS still verifies, 0 when all do
    details: tuple[str, ...] = ()  # "as.2.example.net=pass", "ams.1.example.org=fail", newest first
    reason: str = ""  # why a chain failed (dkimpy's words), shown when no set could be checked

    def entry(self, client_ip: str, trusted: bool) -> str:
        """The ``arc=`` result of Authentication-Results (RFC 8617 §10.1 ptypes)."""
        if self.result in ("none", "temperror"):
            return f"arc={self.result}"
        comment = ", ".join(self.details) or self.reason
        if trusted:
            comment = f"trusted sealer {self.sealer}; " + comment
        text = f"arc={self.result} {authresults.comment(comment)}" if comment else f"arc={self.result}"
        if self.result == "pass":
            text += f" header.oldest-pass={self.oldest_pass}"
        return text + (f" smtp.remote-ip={client_ip}" if client_ip else "")


def verify(raw: bytes, resolver: Resolver) -> ArcResult:
    """Check the ARC chain of ``raw`` (RFC 8617 §5.2), looking keys up through ``resolver``."""
    if b"arc-seal:" not in raw[:header_end(raw)].lower():
        return ArcResult("none")
    if not resolver.available:
        return ArcResult("temperror")
    try:
        cv, instances, reason = dkim.arc_verify(raw, dnsfunc=resolver.key_record)
    except Unavailable:
        return ArcResult("temperror")
    except dkim.DKIMException as e:  # a message dkimpy cannot even read as one
        return ArcResult("fail", reason=str(e))
    details, oldest_pass, sealer, unbroken = [], 0, "", True
    for found in instances:  # newest first
        i = found["instance"]
        as_domain, ams_domain = found["as-domain"].decode(), found["ams-domain"].decode()
        sealer = sealer or as_domain
        details += [f"as.{i}.{as_domain}={'pass' if found['as-valid'] else 'fail'}",
                    f"ams.{i}.{ams_domain}={'pass' if found['ams-valid'] else 'fail'}"]
        # RFC 8617 §5.2: walking back from the newest set, the oldest AMS that still verifies
        # tells how far the message is unchanged (0: since the first set).
        unbroken = unbroken and found["ams-valid"]
        if unbroken:
            oldest_pass = i
    if unbroken:
        oldest_pass = 0
    # dkimpy answers None for a chain a sealer already declared failed (cv=fail): that
    # is a failed chain for us too (RFC 8617 §5.2).
    result = "pass" if cv == dkim.CV_Pass else "fail"
    return ArcResult(result, sealer.lower(), oldest_pass, tuple(details), reason if result == "fail" else "")
