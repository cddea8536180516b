"""Where a domain's mail goes: a static route, the smarthost, or the domain's MX hosts.

Order of precedence, like Postfix: ``[mta.routes]`` (a transport map) first, then the
smarthost, then DNS (where a domain's MTA-STS policy may narrow the MX hosts). The MX path follows RFC 5321 §5.1: MX records by preference; with no
MX record the domain's own A/AAAA records (the implicit MX); a null MX (RFC 7505) means
the domain accepts no mail, which bounces at once. DNS failures are temporary; a domain
that does not exist is permanent.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

import dns.exception
import dns.resolver

from appliance.mta.errors import permanent, temporary
from appliance.mta.sts import PolicyCache
from appliance.net.addresses import split_host_port

log = logging.getLogger("kotakpos.mta")

SMTP_PORT = 25


@dataclass(frozen=True)
class Hop:
    """One server to try."""

    host: str                      # its name: what TLS verifies, and what the DSN's Remote-MTA names
    port: int
    addresses: tuple[str, ...] = ()  # from our DNS lookup; empty = let the system resolve ``host``


@dataclass(frozen=True)
class Destination:
    """How to deliver one domain's mail."""

    key: str                     # what connection limits count per destination
    hops: tuple[Hop, ...]        # tried in order until one answers
    tls: str                     # "opportunistic" | "verify" (STARTTLS, verified) | "implicit" (verified)
    login: tuple[str, str] | None = None  # AUTH user and password (the smarthost)


def destination_key(domain: str, mta) -> str:
    """The destination a domain's mail goes to, without DNS (for grouping and limits)."""
    domain = domain.lower()
    if domain in _routes(mta):
        return "route " + _routes(mta)[domain]
    if mta.smarthost:
        return "smarthost " + mta.smarthost
    return domain


def _routes(mta) -> dict[str, str]:
    return {k.lower().rstrip("."): v for k, v in mta.routes.items()}


def find(domain: str, mta, resolver: dns.resolver.Resolver | None = None,
         sts: PolicyCache | None = None) -> Destination:
    """The destination for ``domain``. Raises DeliveryError (temporary or permanent).

    With ``sts``, the domain's MTA-STS policy (RFC 8461) narrows the MX hosts and makes
    verified TLS mandatory when it is in enforce mode.
    """
    domain = domain.lower().rstrip(".")
    key = destination_key(domain, mta)
    verify = domain in {d.lower() for d in mta.tls_verify_domains}
    route = _routes(mta).get(domain)
    if route:
        host, port = split_host_port(route, SMTP_PORT)
        return Destination(key, (Hop(host, port),), "verify" if verify else "opportunistic")
    if mta.smarthost:
        implicit = mta.smarthost_tls == "implicit"
        host, port = split_host_port(mta.smarthost, 465 if implicit else 587)
        login = (mta.smarthost_user, mta.smarthost_password) if mta.smarthost_user else None
        return Destination(key, (Hop(host, port),), "implicit" if implicit else "verify", login)
    if resolver is None:
        raise temporary("4.4.3", f"no DNS to look up {domain}'s mail servers ([dns] resolver)")
    hops = mx_hops(domain, resolver, mta.remote_port)
    tls = "verify" if verify else "opportunistic"
    policy = sts.policy(domain, resolver, addresses) if sts is not None else None
    if policy is not None and policy.mode != "none":
        allowed = tuple(h for h in hops if policy.allows(h.host))
        if policy.mode == "enforce":
            if not allowed:
                raise temporary("4.7.5", f"no MX host of {domain} matches its MTA-STS policy")
            hops, tls = allowed, "verify"
        elif len(allowed) != len(hops):
            log.info("MTA-STS (testing) of %s does not list MX host(s) %s", domain,
                     ", ".join(h.host for h in hops if h not in allowed))
    return Destination(key, hops, tls)


def mx_hops(domain: str, resolver: dns.resolver.Resolver, port: int = SMTP_PORT) -> tuple[Hop, ...]:
    """RFC 5321 §5.1: the servers to try for ``domain``, best preference first."""
    try:
        answer = resolver.resolve(domain, "MX")
        records = sorted(answer, key=lambda r: r.preference)
    except dns.resolver.NXDOMAIN:
        raise permanent("5.1.2", f"the domain {domain} does not exist") from None
    except dns.resolver.NoAnswer:
        records = None
    except dns.exception.DNSException as e:
        raise temporary("4.4.3", f"DNS lookup of MX for {domain} failed: {e.__class__.__name__}") from None
    if records is None:
        # No MX: the domain itself is the implicit MX (RFC 5321 §5.1).
        found = addresses(domain, resolver)
        if not found:
            raise permanent("5.1.2", f"the domain {domain} has no MX and no address record")
        return (Hop(domain, port, found),)
    names = [r.exchange.to_text(omit_final_dot=True).lower() for r in records]
    if len(names) == 1 and names[0] in ("", "."):
        raise permanent("5.1.10", f"the domain {domain} accepts no mail (null MX, RFC 7505)")
    hops = []
    for name in names:
        found = addresses(name, resolver)
        if found:
            hops.append(Hop(name, port, found))
    if not hops:
        raise temporary("4.4.3", f"no address for any MX host of {domain}")
    return tuple(hops)


def addresses(name: str, resolver: dns.resolver.Resolver) -> tuple[str, ...]:
    """IPv6 then IPv4 addresses of ``name``; a failed lookup of one family is not fatal."""
    found: list[str] = []
    failures = 0
    for rdtype in ("AAAA", "A"):
        try:
            found += [r.address for r in resolver.resolve(name, rdtype)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            pass
        except dns.exception.DNSException:
            failures += 1
    if not found and failures:
        raise temporary("4.4.3", f"DNS lookup of the address of {name} failed")
    return tuple(found)


def connect_targets(hop: Hop) -> list[str]:
    """The addresses to dial for ``hop``: ours from DNS, or the system resolver's answer."""
    if hop.addresses:
        return list(hop.addresses)
    try:
        infos = socket.getaddrinfo(hop.host, hop.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise temporary("4.4.4", f"cannot resolve {hop.host}: {e.strerror}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))
