"""Which peers are trusted: loopback and the configured trusted networks."""

from __future__ import annotations

import ipaddress
from functools import lru_cache


class Networks:
    def __init__(self, cidrs: list[str]):
        self.networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    @lru_cache(maxsize=4096)
    def contains(self, ip: str) -> bool:
        addr = _address(ip)
        return addr is not None and any(addr in net for net in self.networks)


def is_loopback(ip: str) -> bool:
    addr = _address(ip)
    return addr is not None and addr.is_loopback


# Every connection asks about its peer's address two or three times; parsing it with
# ipaddress each time cost more than the rest of the accept.
@lru_cache(maxsize=4096)
def _address(ip: str):
    try:
        addr = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


@lru_cache(maxsize=4096)
def plain_ip(ip: str) -> str:
    """``::ffff:1.2.3.4`` as ``1.2.3.4``; other addresses unchanged."""
    addr = _address(ip)
    return str(addr) if addr is not None else ip


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port
