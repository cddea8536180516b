"""DNS resolvers as the one ``[dns] resolver`` setting names them.

The MTA (MX lookups), the MDA (SPF, DKIM, DMARC, blocklists) and ``kotakpos check`` all
ask DNS through a resolver made here, so an administrator — or a test that must never
leave loopback — sets the DNS server once.
"""

from __future__ import annotations

import logging

import dns.resolver

from appliance.net.addresses import split_host_port

log = logging.getLogger("kotakpos.net")

OFF = "none"


def make_resolver(setting: str, timeout: float) -> dns.resolver.Resolver | None:
    """"" → the system's resolvers; "none" → None (DNS is never asked); "ip", "ip:port", "[v6]:port" → that server.

    Also None when the setting is "" and the system has no resolver configured.
    """
    if setting == OFF:
        return None
    if setting:
        resolver = dns.resolver.Resolver(configure=False)
        host, port = split_host_port(setting, 53)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            log.warning("this system has no DNS resolver configured; set [dns] resolver")
            return None
    resolver.timeout = resolver.lifetime = timeout
    return resolver
