"""Sender authentication: SPF (pyspf), DKIM (dkimpy), DMARC and ARC, in Authentication-Results.

The results go into one Authentication-Results header (RFC 8601) and into
``msg.notes["auth"]`` for the spam filter, which scores failures; this filter itself
never refuses mail. DMARC reads the author with ``mime.author`` (what every other reader
shows) and takes organizational domains from the Public Suffix List shipped in the
``publicsuffixlist`` package. Mail submitted by a logged-in user is recorded as ``auth=pass``
and not checked. DNS goes through ``dnsquery.Resolver``: when DNS is unreachable each
check records ``temperror`` at once.
"""

from __future__ import annotations

import functools
import re
import threading

import dkim
import spf
from publicsuffixlist import PublicSuffixList

from appliance.mda import arc
from appliance.mda.authresults import pvalue
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


# RFC 7489 §3.2: the Public Suffix List is the copy inside the publicsuffixlist package,
# read from disk once on first use and never fetched: a newer list comes with an upgrade.
@functools.cache
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def canonical(domain: str) -> str:
    """A domain as DMARC compares it: lower case, no trailing dot, A-labels (RFC 5890)."""
    domain = domain.strip().lower().rstrip(".")
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:  # not a valid IDN: compared as written, it aligns with nothing else
        return domain


def organizational(domain: str) -> str:
    """The organizational domain (RFC 7489 §3.2): one label more than the public suffix,
    e.g. bank.co.uk for mail.bank.co.uk; a public suffix itself stays as it is."""
    domain = canonical(domain)
    return _public_suffixes().privatesuffix(domain) or domain


# RFC 5321 §4.1.2 (Domain): a host name's labels are letters, digits and inner hyphens
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def is_host_name(domain: str) -> bool:
    """Whether ``domain``, as canonical() gives it, is a host name: one that can publish a
    DMARC record. "bank.co.uk," or "[bank.co.uk]" in a From field is not."""
    return 0 < len(domain) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in domain.split("."))


def aligned(domain: str, author_domain: str, strict: bool) -> bool:
    """RFC 7489 §3.1: strict alignment wants the same domain, relaxed the same organizational domain."""
    domain, author_domain = canonical(domain), canonical(author_domain)
    if strict:
        return domain == author_domain
    return organizational(domain) == organizational(author_domain)


_POLICIES = ("none", "quarantine", "reject")
MAX_AUTHOR_DOMAINS = 10  # distinct From domains whose policies one message makes us look up
_STRICTNESS = {"": 0, "none": 1, "quarantine": 2, "reject": 3}


class AuthFilter(Filter):
    name = "auth"

    def __init__(self, ctx):
        self.ctx = ctx
        self.resolver = Resolver(ctx.config.dns.resolver, ctx.config.mda.dns_timeout)
        self.runs_locally = not self.resolver.configured  # [dns] resolver = "none": every check is temperror
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
                                         f"{self.hostname}; auth=pass smtp.auth={pvalue(msg.envelope.authenticated_as)}"),))
        _current.resolver = self.f.resolver
        spf_result, spf_domain = self.spf()
        dkim_results = self.dkim()
        dmarc_result, policy, from_domain = self.dmarc(spf_result, spf_domain, dkim_results)
        chain = arc.verify(msg.raw, self.f.resolver)
        trusted_chain = chain.result == "pass" and chain.sealer in self.f.trusted_sealers
        msg.notes["auth"] = {"spf": spf_result, "dkim": [r for r, _, _ in dkim_results] or ["none"],
                             "dmarc": dmarc_result, "dmarc_policy": policy, "arc": chain.result,
                             "arc_trusted": trusted_chain}
        parts = [f"spf={spf_result} smtp.mailfrom={pvalue(msg.sender or 'postmaster@' + msg.envelope.client_name)}"]
        parts += [f"dkim={r} header.d={pvalue(d)} header.s={pvalue(s)}" for r, d, s in dkim_results] or ["dkim=none"]
        parts.append(f"dmarc={dmarc_result}" + (f" header.from={pvalue(from_domain)}" if from_domain else ""))
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

    # RFC 7489 §6.6: each author domain's policy, passed when SPF or DKIM passed for a
    # domain aligned with it. A message with several From fields is not aligned whatever
    # it carries (§6.6.1); one that names several domains fails when any of them fails,
    # under the strictest of their policies.
    def dmarc(self, spf_result: str, spf_domain: str, dkim_results) -> tuple[str, str, str]:
        author = self.msg.author
        domains = [canonical(d) for d in author.domains]
        if not domains:
            return "permerror", "", ""  # no domain to take a policy from
        malformed = [d for d in domains if not is_host_name(d)]
        if malformed or len(domains) > MAX_AUTHOR_DOMAINS:
            # Past the lookups we make, any domain could hide a p=reject; so could a From
            # domain that is no host name, which has no record to ask though a reader may
            # well show it as the bank's ("bank.co.uk,"). Such a From fails under the
            # strictest policy (§6.6.1 lets a receiver reject it outright).
            return "fail", "reject", (malformed or domains)[0]
        results = []
        for domain in domains:
            try:
                found = self._policy(domain)
            except Unavailable:
                return "temperror", "", domains[0]
            if author.fields > 1:
                results.append(("fail", found[1] if found else "", domain))
            elif found is None:
                results.append(("none", "", domain))
            else:
                t, policy = found
                passed = (spf_result == "pass" and aligned(spf_domain, domain, t.get("aspf") == "s")) or any(
                    r == "pass" and aligned(d, domain, t.get("adkim") == "s") for r, d, _ in dkim_results)
                results.append(("pass" if passed else "fail", policy, domain))
        failed = [r for r in results if r[0] == "fail"]
        if failed:
            return max(failed, key=lambda r: _STRICTNESS[r[1]])
        return next((r for r in results if r[0] == "pass"), results[0])

    def _policy(self, domain: str) -> tuple[dict[str, str], str] | None:
        """The DMARC record's tags and the policy for ``domain`` (RFC 7489 §6.6.3): its own
        record's p=, else its organizational domain's sp= (or p=); None without a record."""
        record = self._dmarc_record(domain)
        subdomain = False
        if record is None:
            org = organizational(domain)
            if org == domain:
                return None
            record, subdomain = self._dmarc_record(org), True
            if record is None:
                return None
        t = tags(record)
        policy = (t.get("sp") if subdomain else None) or t.get("p", "")
        policy = policy.lower()
        # §6.6.3 step 6: a record without a usable policy asks for reports only
        return t, policy if policy in _POLICIES else "none"

    def _dmarc_record(self, domain: str) -> str | None:
        if not self.f.resolver.available:
            raise Unavailable("DNS is not reachable")
        for txt in self.f.resolver.txt(f"_dmarc.{domain}"):
            text = txt.decode("utf-8", "replace")
            if text.lower().startswith("v=dmarc1"):
                return text
        return None

