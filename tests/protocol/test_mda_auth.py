"""SPF and DKIM results of mail received by SMTP, checked against a local DNS server."""


import dkim
import pytest

from tests import dns_zone
from tests.mda_helpers import folder, plain, rsa_key, send, wire

ALICE = "alice@example.org"


@pytest.fixture
def dkim_key():
    return rsa_key()


@pytest.fixture
def server(make_server, dkim_key):
    zone = dns_zone.Zone()
    zone.add("allowed.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    zone.add("forbidden.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    zone.add("k1._domainkey.signed.test", "TXT", f"v=DKIM1; k=rsa; p={dkim_key[1]}")
    dns, address = dns_zone.start(zone)
    running = make_server(dns={"resolver": address}, mda={"filters": ["virus", "auth"]})
    running.store.add_domain("example.org")
    running.add_user(ALICE)
    yield running
    dns.stop()


def results(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    start = head.index("Authentication-Results:")
    end = head.find("\r\n", start)
    while head[end + 2:end + 3] in (" ", "\t"):
        end = head.find("\r\n", end + 2)
    return head[start:end]


def test_spf_pass_and_fail(server):
    send(server, plain(sender="bob@allowed.test"), sender="bob@allowed.test")
    send(server, plain(sender="eve@forbidden.test"), sender="eve@forbidden.test")
    first, second = folder(server, ALICE)
    assert "spf=pass smtp.mailfrom=bob@allowed.test" in results(first)
    assert "spf=fail smtp.mailfrom=eve@forbidden.test" in results(second)


def test_dkim_pass_and_fail(server, dkim_key):
    raw = wire(plain(sender="news@signed.test", body="Signed words.\n"))
    signature = dkim.sign(raw, b"k1", b"signed.test", dkim_key[0], include_headers=[b"from", b"subject"])
    send(server, signature + raw, sender="news@signed.test")
    send(server, signature + raw.replace(b"Signed words.", b"Forged words."), sender="news@signed.test")
    good, bad = folder(server, ALICE)
    assert "dkim=pass header.d=signed.test header.s=k1" in results(good)
    assert "dkim=fail header.d=signed.test header.s=k1" in results(bad)
