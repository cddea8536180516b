"""The deliverability checks: one ``Finding`` per aspect, with the record to publish when wrong."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field

import dns.exception
import dns.resolver
import dns.reversename

from appliance.net.dns import make_resolver

OK, WARN, FAIL = "ok", "warn", "FAIL"
UNREACHABLE = "DNS"  # the aspect of the finding that says DNS gave no answer at all


@dataclass
class Finding:
    aspect: str                 # MX, SPF, DKIM, DMARC, MTA-STS, PTR; UNREACHABLE when DNS did not answer
    status: str                 # ok | warn | FAIL
    detail: str
    fix: list[str] = field(default_factory=list)   # records to publish (zone-file lines) or actions


class Resolver:
    """DNS questions for the checks, through the ``[dns] resolver`` setting."""

    def __init__(self, setting: str = "", timeout: float = 3.0):
        self.resolver = make_resolver(setting, timeout)
        if self.resolver is None:
            raise DnsError("DNS is turned off ([dns] resolver = \"none\"); kotakpos check needs a resolver")

    def query(self, name: str, rdtype: str) -> list:
        """The answer's records; [] when the name or the type does not exist. Raises DnsError otherwise."""
        try:
            return list(self.resolver.resolve(name, rdtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as e:
            raise DnsError(f"DNS gave no answer for {name} {rdtype}: {e.__class__.__name__}") from None

    def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self.query(name, "TXT")]

    def addresses(self, name: str) -> set[str]:
        return {r.address for rdtype in ("A", "AAAA") for r in self.query(name, rdtype)}


class DnsError(Exception):
    pass


def _same_host(a: str, b: str) -> bool:
    return a.lower().rstrip(".") == b.lower().rstrip(".")


def _txt_line(name: str, value: str) -> str:
    quoted = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"{name}.\tIN\tTXT\t{quoted}"


def check_mx(resolver: Resolver, domain: str, hostname: str) -> Finding:
    records = resolver.query(domain, "MX")
    names = [r.exchange.to_text() for r in records]
    fix = [f"{domain}.\tIN\tMX\t10 {hostname}."]
    if not records:
        return Finding("MX", FAIL, f"{domain} has no MX record: nobody can send it mail", fix)
    if not any(_same_host(n, hostname) for n in names):
        return Finding("MX", FAIL, f"the MX of {domain} names {', '.join(names)}, not {hostname}", fix)
    if not resolver.addresses(hostname):
        return Finding("MX", FAIL, f"{hostname} has no address (A/AAAA record)", [f"{hostname}.\tIN\tA\t<this server's address>"])
    return Finding("MX", OK, f"{domain} -> {', '.join(names)}")


def check_spf(resolver: Resolver, domain: str, hostname: str, public: str) -> Finding:
    records = [t for t in resolver.txt(domain) if t.lower().startswith("v=spf1")]
    fix = [_txt_line(domain, "v=spf1 mx ~all")]
    if not records:
        return Finding("SPF", FAIL, f"{domain} has no SPF record: receivers cannot tell its mail from forgeries", fix)
    if len(records) > 1:
        return Finding("SPF", FAIL, f"{domain} has {len(records)} SPF records; RFC 7208 §3.2 allows one (a permerror)", fix)
    terms = records[0].split()[1:]
    mx_is_us = any(_same_host(r.exchange.to_text(), hostname) for r in resolver.query(domain, "MX"))
    allowed = False
    for term in terms:
        mechanism = term.lstrip("+").lower()
        if mechanism == "mx" and mx_is_us:
            allowed = True
        elif mechanism in (f"a:{hostname.lower()}", f"a:{hostname.lower()}."):
            allowed = True
        elif mechanism == "a" and public and public in resolver.addresses(domain):
            allowed = True
        elif mechanism.startswith(("ip4:", "ip6:")) and public:
            try:
                allowed = allowed or ipaddress.ip_address(public) in ipaddress.ip_network(mechanism[4:], strict=False)
            except ValueError:
                pass
    if allowed:
        return Finding("SPF", OK, records[0])
    if any(t.lower().lstrip("+").startswith(("include:", "redirect=")) for t in terms):
        return Finding("SPF", WARN, f"{records[0]} (includes another domain's policy; make sure it allows {hostname})")
    # Keep what the record allows already (another provider, a web shop) and add our MX.
    return Finding("SPF", FAIL, f"{records[0]} does not allow {hostname} to send for {domain}",
                   [_txt_line(domain, " ".join(["v=spf1", "mx", *terms]))])


def check_dkim(resolver: Resolver, domain: str, expected: list[tuple[str, str]]) -> list[Finding]:
    """``expected``: (name, TXT value) of the keys Kotakpos signs with (``mta.dkim.public_records``)."""
    if not expected:
        return [Finding("DKIM", WARN, f"Kotakpos has no DKIM keys for {domain}; `kotakpos domain add` makes them")]
    findings = []
    for name, value in expected:
        published = resolver.txt(name)
        want_key = _tag(value, "p")
        if any(_tag(t, "p") == want_key for t in published):
            findings.append(Finding("DKIM", OK, f"{name} matches the signing key"))
        elif published:
            findings.append(Finding("DKIM", FAIL, f"{name} holds a different key: signatures will not verify",
                                    [_txt_line(name, value)]))
        else:
            findings.append(Finding("DKIM", FAIL, f"{name} is missing: signatures cannot be verified",
                                    [_txt_line(name, value)]))
    return findings


def _tag(record: str, tag: str) -> str:
    """A tag's value in a DKIM/DMARC "tag=value; ..." record, whitespace removed."""
    for part in record.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == tag:
            return "".join(value.split())
    return ""


def check_dmarc(resolver: Resolver, domain: str) -> Finding:
    name = f"_dmarc.{domain}"
    records = [t for t in resolver.txt(name) if t.replace(" ", "").lower().startswith("v=dmarc1")]
    fix = [_txt_line(name, f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}")]
    if not records:
        return Finding("DMARC", FAIL, f"{name} is missing: Gmail and Outlook expect a DMARC policy from senders", fix)
    if len(records) > 1:
        return Finding("DMARC", FAIL, f"{name} has {len(records)} DMARC records; receivers ignore them all", fix)
    policy = _tag(records[0], "p").lower()
    if policy not in ("none", "quarantine", "reject"):
        return Finding("DMARC", FAIL, f"{records[0]} has no valid p= policy", fix)
    if policy == "none":
        return Finding("DMARC", WARN, f"{records[0]} (p=none only monitors; quarantine once reports look clean)")
    return Finding("DMARC", OK, records[0])


class PolicyError(Exception):
    pass


def fetch_policy(address: str, domain: str, port: int = 443, ca_file: str | None = None, timeout: float = 5.0) -> str:
    """RFC 8461 §3.3: the policy from https://mta-sts.DOMAIN/.well-known/mta-sts.txt, fetched from
    ``address`` (as our resolver gave it) with the certificate checked for mta-sts.DOMAIN."""
    host = f"mta-sts.{domain}"
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((address, port), timeout) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = tls
        conn.request("GET", "/.well-known/mta-sts.txt")
        response = conn.getresponse()
        body = response.read(MAX_POLICY + 1)
    if response.status != 200:  # §3.3: no redirects either
        raise PolicyError(f"HTTP status {response.status}")
    if len(body) > MAX_POLICY:
        raise PolicyError("the policy is longer than 64 KiB")
    return body.decode("utf-8")


MAX_POLICY = 64 * 1024


def parse_policy(text: str) -> dict[str, list[str]]:
    """RFC 8461 §3.2: "key: value" lines (mx may repeat) -> key -> values."""
    policy: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            policy.setdefault(key.strip().lower(), []).append(value.strip())
    return policy


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: an mx pattern is a name, or "*." and a name standing for one more label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return pattern == host


def check_mta_sts(resolver: Resolver, domain: str, hostname: str, port: int = 443, ca_file: str | None = None) -> Finding:
    name = f"_mta-sts.{domain}"
    records = [t for t in resolver.txt(name) if t.replace(" ", "").lower().startswith("v=stsv1")]
    if not records:
        return Finding("MTA-STS", WARN, f"not published (optional: {name} TXT and the policy host mta-sts.{domain})")
    if not _tag(records[0], "id"):
        return Finding("MTA-STS", FAIL, f"{records[0]} has no id=", [_txt_line(name, "v=STSv1; id=1")])
    addresses = sorted(resolver.addresses(f"mta-sts.{domain}"))
    serve = f"enable [web] (Kotakpos serves the policy) and add mta-sts.{domain} to [acme] names"
    if not addresses:
        return Finding("MTA-STS", FAIL, f"mta-sts.{domain} does not resolve: senders cannot fetch the policy",
                       [f"mta-sts.{domain}.\tIN\tCNAME\t{hostname}.", serve])
    url = f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
    try:
        policy = parse_policy(fetch_policy(addresses[0], domain, port, ca_file))
    except (OSError, http.client.HTTPException, PolicyError, UnicodeDecodeError) as e:
        return Finding("MTA-STS", FAIL, f"the policy at {url} cannot be fetched: {e}", [serve])
    mode, mx = (policy.get("mode") or [""])[0], policy.get("mx", [])
    if (policy.get("version") or [""])[0] != "STSv1" or mode not in ("enforce", "testing", "none"):
        return Finding("MTA-STS", FAIL, f"the policy at {url} is not a valid STSv1 policy", [serve])
    if not any(mx_matches(p, hostname) for p in mx):
        return Finding("MTA-STS", FAIL, f"the policy at {url} allows mx {', '.join(mx) or 'none'}, not {hostname}: "
                       "senders that enforce it will not deliver here", [f"mx: {hostname} in the policy", serve])
    if mode == "none":
        return Finding("MTA-STS", WARN, f"{records[0]}; the policy's mode is none (it protects nothing)")
    return Finding("MTA-STS", OK, f"{records[0]}; policy mode {mode}, mx {', '.join(mx)}")


def check_reverse(resolver: Resolver, public: str, hostname: str) -> Finding:
    try:
        reverse = dns.reversename.from_address(public).to_text()
    except (ValueError, dns.exception.SyntaxError):
        return Finding("PTR", FAIL, f"check.public_address {public!r} is not an IP address")
    names = [r.target.to_text() for r in resolver.query(reverse, "PTR")]
    fix = [f"{reverse}\tIN\tPTR\t{hostname}.  (set by whoever owns {public}: ask your ISP)"]
    if not names:
        return Finding("PTR", FAIL, f"{public} has no reverse DNS name: many receivers refuse such senders", fix)
    if not any(_same_host(n, hostname) for n in names):
        return Finding("PTR", FAIL, f"{public} is named {', '.join(names)}, not {hostname}", fix)
    if public not in resolver.addresses(hostname):
        return Finding("PTR", FAIL, f"{hostname} does not resolve back to {public}",
                       [f"{hostname}.\tIN\t{'AAAA' if ':' in public else 'A'}\t{public}"])
    return Finding("PTR", OK, f"{public} <-> {hostname}")


def check_domain(resolver: Resolver, domain: str, hostname: str, public: str,
                 dkim_expected: list[tuple[str, str]]) -> list[Finding]:
    """Every check for one domain; a DNS failure becomes a FAIL finding of its aspect."""
    steps = [("MX", lambda: [check_mx(resolver, domain, hostname)]),
             ("SPF", lambda: [check_spf(resolver, domain, hostname, public)]),
             ("DKIM", lambda: check_dkim(resolver, domain, dkim_expected)),
             ("DMARC", lambda: [check_dmarc(resolver, domain)]),
             ("MTA-STS", lambda: [check_mta_sts(resolver, domain, hostname)])]
    findings = []
    for aspect, step in steps:
        try:
            findings += step()
        except DnsError as e:
            # The resolver is failing: asking the rest would only wait for the same timeout again.
            findings.append(Finding(UNREACHABLE, FAIL, f"DNS could not be reached ({e}); the {aspect} check "
                                    "and those after it were skipped"))
            break
    return findings
