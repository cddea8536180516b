"""A tiny authoritative DNS server on loopback (dnslib) for SPF, DKIM and DMARC tests.

``Zone.records`` maps (name, type) to values; TXT values longer than 255 bytes are split
into strings as a real zone would. Unknown names get NXDOMAIN.
"""

from __future__ import annotations

import dnslib
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Zone(BaseResolver):
    def __init__(self):
        self.records: dict[tuple[str, str], list[str]] = {}
        self.queries: list[tuple[str, str]] = []

    def add(self, name: str, rtype: str, value: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), rtype), []).append(value)

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = dnslib.QTYPE[request.q.qtype]
        self.queries.append((qname, qtype))
        values = self.records.get((qname, qtype))
        if values is None:
            if not any(name == qname for name, _ in self.records):
                reply.header.rcode = dnslib.RCODE.NXDOMAIN
            return reply
        for value in values:
            if qtype == "TXT":
                data = value.encode()
                rdata = dnslib.TXT([data[i:i + 255] for i in range(0, len(data), 255)])
            elif qtype == "A":
                rdata = dnslib.A(value)
            elif qtype == "AAAA":
                rdata = dnslib.AAAA(value)
            elif qtype == "MX":
                rdata = dnslib.MX(value)
            else:
                continue
            reply.add_answer(dnslib.RR(qname, getattr(dnslib.QTYPE, qtype), rdata=rdata, ttl=60))
        return reply


def start(zone: Zone) -> tuple[DNSServer, str]:
    """Serve ``zone`` on 127.0.0.1 (UDP, an ephemeral port); returns the server and "ip:port"."""
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    server.start_thread()
    return server, f"127.0.0.1:{server.server.server_address[1]}"
