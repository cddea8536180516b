"""MX routing against a small DNS server on loopback (dnslib), set as ``[mta] resolver``."""

from __future__ import annotations

import ssl

import pytest
from dnslib import QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from tests.protocol.mta_helpers import FAST_RETRY, delivery_status, inbox, queue, wait_queue_empty, wait_until
from tests.protocol.mta_sink import Sink

SENDER = "alice@example.org"

ZONE = """
pref.test.        60 IN MX 20 backup.pref.test.
pref.test.        60 IN MX 10 best.pref.test.
best.pref.test.   60 IN A  127.0.0.1
backup.pref.test. 60 IN A  127.0.0.1
skip.test.        60 IN MX 10 noaddress.skip.test.
skip.test.        60 IN MX 20 up.skip.test.
noaddress.skip.test. 60 IN TXT "no address here"
up.skip.test.     60 IN A  127.0.0.1
implicit.test.    60 IN A  127.0.0.1
nullmx.test.      60 IN MX 0 .
secure.test.      60 IN MX 10 mail.example.org.
mail.example.org. 60 IN A  127.0.0.1
misnamed.test.    60 IN MX 10 mx.misnamed.test.
mx.misnamed.test. 60 IN A  127.0.0.1
"""


class Zone(BaseResolver):
    """Answers from ZONE; NXDOMAIN for names it does not know; remembers every question."""

    def __init__(self):
        self.records = RR.fromZone(ZONE)
        self.asked: list[tuple[str, str]] = []

    def resolve(self, request, handler):
        qname, qtype = request.q.qname, QTYPE[request.q.qtype]
        self.asked.append((str(qname).rstrip("."), qtype))
        reply = request.reply()
        known = [rr for rr in self.records if rr.rname == qname]
        reply.rr = [rr for rr in known if QTYPE[rr.rtype] == qtype]
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@pytest.fixture
def dns_server():
    zone = Zone()
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    server.start_thread()
    server.zone = zone
    server.port = server.server.server_address[1]
    yield server
    server.stop()


@pytest.fixture
def mx_setup(make_server, dns_server, _certificate):
    """The sink offers STARTTLS with the certificate of mail.example.org (trusted via tls_cafile)."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*_certificate)
    sink = Sink(tls_context=tls)
    server = make_server(dns={"resolver": f"127.0.0.1:{dns_server.port}"}, mta={"remote_port": sink.port,
                              "retry_intervals": FAST_RETRY, "tls_cafile": str(_certificate[0]),
                              "tls_verify_domains": ["secure.test", "misnamed.test"]})
    server.add_user(SENDER)
    yield server, sink, dns_server.zone
    sink.close()


def test_mx_hosts_are_tried_by_preference(mx_setup):
    server, sink, zone = mx_setup
    queue(server, SENDER, ["bob@pref.test"])
    [got] = sink.wait_for(1)
    assert got.recipients == ["bob@pref.test"]
    hosts = [name for name, qtype in zone.asked if qtype in ("A", "AAAA")]
    assert hosts.index("best.pref.test") < hosts.index("backup.pref.test")


def test_an_mx_host_without_an_address_is_skipped(mx_setup):
    server, sink, _ = mx_setup
    queue(server, SENDER, ["bob@skip.test"])
    sink.wait_for(1)
    wait_queue_empty(server)


def test_a_domain_without_mx_gets_mail_at_its_own_address(mx_setup):
    server, sink, zone = mx_setup
    queue(server, SENDER, ["bob@implicit.test"])
    [got] = sink.wait_for(1)
    assert got.recipients == ["bob@implicit.test"]
    assert ("implicit.test", "MX") in zone.asked


def test_a_null_mx_bounces_at_once(mx_setup):
    server, sink, _ = mx_setup
    queue(server, SENDER, ["bob@nullmx.test"])
    [dsn] = wait_until(lambda: inbox(server, SENDER), what="a DSN")
    [block] = delivery_status(dsn)
    assert block["Status"] == "5.1.10" and block["Action"] == "failed"
    wait_queue_empty(server)
    assert sink.messages == []


def test_a_domain_that_does_not_exist_bounces(mx_setup):
    server, sink, _ = mx_setup
    queue(server, SENDER, ["bob@nowhere.test"])
    [dsn] = wait_until(lambda: inbox(server, SENDER), what="a DSN")
    assert delivery_status(dsn)[0]["Status"] == "5.1.2"


def test_a_domain_requiring_verified_tls_gets_it_when_the_mx_name_matches(mx_setup):
    server, sink, _ = mx_setup
    queue(server, SENDER, ["bob@secure.test"])
    [got] = sink.wait_for(1)
    assert got.tls


def test_a_domain_requiring_verified_tls_waits_when_the_certificate_names_another_host(make_server, mx_setup):
    server, sink, _ = mx_setup
    [queue_id] = queue(server, SENDER, ["bob@misnamed.test"])
    entry = wait_until(lambda: (e := server.store.queue_entry(queue_id)).attempts >= 1 and e, what="an attempt")
    assert "TLS" in entry.last_error and entry.state == "queued"
    assert sink.messages == []
