"""Sender authentication: SPF (pyspf), DKIM (dkimpy), DMARC and ARC, in Authentication-Results.

The results go into one Authentication-Results header (RFC 8601) and into
``msg.notes["auth"]`` for the spam filter, which scores failures; this filter itself
never refuses mail. Mail submitted by a logged-in user is recorded as ``auth=pass``
and not checked. DNS goes through ``dnsquery.Resolver``: when DNS is unreachable each
check records ``temperror`` at once.
"""

from __future__ import annotations

import re
import threading

import dkim
import spf

from appliance.mda import arc
from appliance.mda.dnsquery import Resolver, Unavailable
from appliance.mda.filter import Check, Filter, Incoming, Verdict

# pyspf looks names up through its module-level ``DNSLookup``; we route that through the
# resolver of the check running in this thread, so each server uses its own settings.
_current = threading.local()


def _spf_lookup(name, qtype, tcpfallback=True, timeout=30):
    resolver: Resolver = _current.resolver
    try:
        records = resolver.query(name, qtype)
    except Unavailable as e:
        raise spf.TempError(f"DNS {e}") from None
    out = []
    for r in records:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), r.address))
        elif qtype == "MX":
            out.append(((name, qtype), (r.preference, r.exchange)))
        elif qtype == "PTR":
            out.append(((name, qtype), r.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), r.strings))
    return out


spf.DNSLookup = _spf_lookup

_TAG = re.compile(r"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)", re.I)


def tags(value: str) -> dict[str, str]:
    """``a=1; b = 2`` tag lists (DKIM-Signature, DMARC records) as a dict, names lower-cased."""
    return {k.lower(): "".join(v.split()) for k, v in _TAG.findall(value)}


def organizational(domain: str) -> str:
    """The organizational domain, approximated by the last two labels (no public suffix list)."""
    return ".".join(domain.lower().rstrip(".").split(".")[-2:])


class AuthFilter(Filter):
    name = "auth"

    def __init__(self, ctx):
        self.ctx = ctx
        self.resolver = Resolver(ctx.config.dns.resolver, ctx.config.mda.dns_timeout)
        self.trusted_sealers = frozenset(d.lower().rstrip(".") for d in ctx.config.mda.arc_trusted_sealers)

    def check(self, msg: Incoming) -> Check:
        return AuthCheck(self, msg)


class AuthCheck(Check):
    def __init__(self, f: AuthFilter, msg: Incoming):
        super().__init__(msg)
        self.f = f
        self.hostname = msg.hostname

    def check_body(self) -> Verdict:
        msg = self.msg
        if msg.authenticated:
            msg.notes["auth"] = {"auth": "pass"}
            return Verdict(add_headers=(("Authentication-Results",
                                         f"{self.hostname}; auth=pass smtp.auth={msg.envelope.authenticated_as}"),))
        _current.resolver = self.f.resolver
        spf_result, spf_domain = self.spf()
        dkim_results = self.dkim()
        dmarc_result, policy, from_domain = self.dmarc(spf_result, spf_domain, dkim_results)
        chain = arc.verify(msg.raw, self.f.resolver)
        trusted_chain = chain.result == "pass" and chain.sealer in self.f.trusted_sealers
        msg.notes["auth"] = {"spf": spf_result, "dkim": [r for r, _, _ in dkim_results] or ["none"],
                             "dmarc": dmarc_result, "dmarc_policy": policy, "arc": chain.result,
                             "arc_trusted": trusted_chain}
        parts = [f"spf={spf_result} smtp.mailfrom={msg.sender or 'postmaster@' + msg.envelope.client_name}"]
        parts += [f"dkim={r} header.d={d} header.s={s}" for r, d, s in dkim_results] or ["dkim=none"]
        parts.append(f"dmarc={dmarc_result}" + (f" header.from={from_domain}" if from_domain else ""))
        parts.append(chain.entry(msg.envelope.client_ip, trusted_chain))
        return Verdict(add_headers=(("Authentication-Results", f"{self.hostname};\r\n\t" + ";\r\n\t".join(parts)),))

    def close(self) -> None:
        _current.resolver = None

    # RFC 7208 §2.4: check MAIL FROM; for the null sender, the HELO identity.
    def spf(self) -> tuple[str, str]:
        env = self.msg.envelope
        if not env.client_ip:
            return "none", ""
        sender = env.sender or f"postmaster@{env.client_name}"
        if not self.f.resolver.available:
            return "temperror", sender.rpartition("@")[2]
        result, _code, _text = spf.query(i=env.client_ip, s=sender, h=env.client_name,
                                         timeout=self.f.resolver.timeout * 4).check()
        return result, sender.rpartition("@")[2].lower()

    # RFC 6376 §6: verify every signature; each gets its own result.
    def dkim(self) -> list[tuple[str, str, str]]:
        signatures = self.msg.header("DKIM-Signature")
        if not signatures:
            return []
        verifier = dkim.DKIM(self.msg.raw)
        results = []
        for index, value in enumerate(signatures):
            t = tags(value)
            domain, selector = t.get("d", "").lower(), t.get("s", "")
            if not self.f.resolver.available:
                results.append(("temperror", domain, selector))
                continue
            try:
                ok = verifier.verify(idx=index, dnsfunc=self.f.resolver.key_record)
                results.append(("pass" if ok else "fail", domain, selector))
            except (Unavailable, dkim.DnsTimeoutError):
                results.append(("temperror", domain, selector))
            except dkim.ValidationError:  # the signature or body hash does not verify
                results.append(("fail", domain, selector))
            except dkim.DKIMException:  # unusable signature or key
                results.append(("permerror", domain, selector))
        return results

    # RFC 7489 §6.6: the From domain's policy, passed when SPF or DKIM passed for an
    # aligned domain (relaxed alignment: same organizational domain).
    def dmarc(self, spf_result: str, spf_domain: str, dkim_results) -> tuple[str, str, str]:
        authors = self.msg.addresses("From")
        if len(authors) != 1:
            return "none", "", ""
        from_domain = authors[0].rpartition("@")[2]
        if not from_domain:
            return "none", "", ""
        try:
            record = self._dmarc_record(from_domain) or self._dmarc_record(organizational(from_domain))
        except Unavailable:
            return "temperror", "", from_domain
        if record is None:
            return "none", "", from_domain
        t = tags(record)
        strict_spf, strict_dkim = t.get("aspf") == "s", t.get("adkim") == "s"

        def aligned(domain: str, strict: bool) -> bool:
            return domain == from_domain if strict else organizational(domain) == organizational(from_domain)

        passed = (spf_result == "pass" and aligned(spf_domain, strict_spf)) or any(
            r == "pass" and aligned(d, strict_dkim) for r, d, _ in dkim_results)
        return ("pass" if passed else "fail"), t.get("p", "none").lower(), from_domain

    def _dmarc_record(self, domain: str) -> str | None:
        if not self.f.resolver.available:
            raise Unavailable("DNS is not reachable")
        for txt in self.f.resolver.txt(f"_dmarc.{domain}"):
            text = txt.decode("utf-8", "replace")
            if text.lower().startswith("v=dmarc1"):
                return text
        return None

