"""SPF, DKIM and DMARC against a local DNS server, and temperror at once without DNS."""

import time

import authres
import dkim
import pytest

from appliance.mda.auth import AuthFilter
from tests import dns_zone
from tests.mda_helpers import Counting, authenticate, incoming, plain, rsa_key, wire


@pytest.fixture(scope="module")
def key():
    return rsa_key()


@pytest.fixture(scope="module")
def zone(key):
    z = dns_zone.Zone()
    z.add("remote.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    z.add("sel._domainkey.remote.test", "TXT", f"v=DKIM1; k=rsa; p={key[1]}")
    z.add("_dmarc.remote.test", "TXT", "v=DMARC1; p=reject")
    z.add("other.test", "TXT", "v=spf1 -all")
    server, address = dns_zone.start(z)
    yield address
    server.stop()


def signed(key, **kw) -> bytes:
    raw = wire(plain(sender="bob@remote.test", **kw))
    return dkim.sign(raw, b"sel", b"remote.test", key[0], include_headers=[b"from", b"subject", b"to"]) + raw


def test_spf_pass_and_dmarc_pass(zone):
    header, notes, _ = authenticate(wire(plain(sender="bob@remote.test")), zone, client_ip="127.0.0.1")
    assert notes["spf"] == "pass" and notes["dmarc"] == "pass"
    assert header.startswith("mail.example.org;") and "spf=pass smtp.mailfrom=bob@remote.test" in header


def test_spf_fail_from_a_wrong_address_and_dmarc_fails_with_policy(zone):
    _, notes, _ = authenticate(wire(plain(sender="bob@remote.test")), zone, client_ip="192.0.2.9")
    assert notes["spf"] == "fail" and notes["dmarc"] == "fail" and notes["dmarc_policy"] == "reject"


def test_dkim_pass_and_fail(zone, key):
    raw = signed(key)
    header, notes, _ = authenticate(raw, zone, client_ip="192.0.2.9", sender="bounce@elsewhere.test")
    assert notes["dkim"] == ["pass"] and "dkim=pass header.d=remote.test header.s=sel" in header
    assert notes["dmarc"] == "pass"  # aligned DKIM alone passes DMARC
    tampered = raw.replace(b"Hello there.", b"Hello thief.")
    _, notes, _ = authenticate(tampered, zone, client_ip="192.0.2.9", sender="bounce@elsewhere.test")
    assert notes["dkim"] == ["fail"] and notes["dmarc"] == "fail"


def test_no_dns_records_temperror_at_once():
    start = time.monotonic()
    header, notes, _ = authenticate(wire(plain()), "none", client_ip="127.0.0.1")
    assert time.monotonic() - start < 0.5
    assert notes["spf"] == "temperror" and notes["dmarc"] == "temperror"


def test_unreachable_resolver_costs_one_timeout_then_nothing():
    f = AuthFilter(Counting(resolver="127.0.0.1:9", dns_timeout=0.3))  # nothing answers there
    for expected_max in (2.0, 0.2):
        start = time.monotonic()
        check = f.check(incoming(wire(plain()), client_ip="127.0.0.1"))
        check.check_body()
        check.close()
        assert time.monotonic() - start < expected_max
        assert check.msg.notes["auth"]["spf"] == "temperror"


def test_submitted_mail_is_not_checked():
    header, notes, _ = authenticate(wire(plain()), "none", authenticated_as="alice@example.org")
    assert notes == {"auth": "pass"} and "auth=pass smtp.auth=alice@example.org" in header


def test_forged_results_claiming_our_name_are_dropped():
    raw = (b"Received: from x\r\nAuthentication-Results: mail.example.org;\r\n\tspf=pass smtp.mailfrom=a@b.test\r\n"
           b"Authentication-Results: other.test; dkim=pass\r\nSubject: hi\r\n\r\nbody\r\n")
    msg = incoming(raw)
    assert msg.raw == (b"Received: from x\r\nAuthentication-Results: other.test; dkim=pass\r\nSubject: hi\r\n\r\n"
                       b"body\r\n")
    assert incoming(raw, authenticated_as="alice@example.org").raw == raw  # our own users are trusted


@pytest.mark.parametrize("field", [
    b"Authentication-Results: mail.example.org 1; dmarc=pass header.from=bank.test",  # a version after the id
    b"Authentication-Results: (ours) mail.example.org; dmarc=pass header.from=bank.test",  # a comment before it
    b'Authentication-Results: "mail.example.org"; dmarc=pass header.from=bank.test',  # quoted
    b"Authentication-Results: MAIL.Example.ORG.; dmarc=pass header.from=bank.test",
    b"Authentication-Results:\r\n mail.example.org\r\n ; dmarc=pass header.from=bank.test",  # folded
])
def test_our_results_are_dropped_however_the_id_is_written(field):
    # each is ours to an RFC 8601 reader (authres, which dkimpy seals ARC with, takes all of them)
    raw = b"Received: from x\r\n" + field + b"\r\nSubject: hi\r\n\r\nbody\r\n"
    assert incoming(raw).raw == b"Received: from x\r\nSubject: hi\r\n\r\nbody\r\n"


def test_forged_results_are_dropped_from_a_message_without_a_body():
    raw = b"Received: from x\r\nSubject: hi\r\nAuthentication-Results: mail.example.org; dmarc=pass header.from=bank.test"
    assert incoming(raw).raw == b"Received: from x\r\nSubject: hi\r\n"


@pytest.mark.parametrize("helo, sender, written", [
    ("mx.remote.test", "bob@remote.test", "smtp.mailfrom=bob@remote.test"),
    ("mx.remote.test", "SRS0=ab=cd=origin.test=news@remote.test", "smtp.mailfrom=SRS0=ab=cd=origin.test=news@remote.test"),
    ("mx.remote.test", '"a;dmarc=pass"@remote.test', "smtp.mailfrom=remote.test"),
    ("remote.test;dmarc=pass", "", 'smtp.mailfrom="remote.test;dmarc=pass"'),
    ("remote.test (dmarc=pass)", "", 'smtp.mailfrom="remote.test (dmarc=pass)"'),
])
def test_no_session_value_adds_a_result_to_ours(helo, sender, written):
    # RFC 8601 §2.2: what the client chose is written so that no reader splits it into results
    header, _, _ = authenticate(wire(plain()), "none", sender=sender, client_name=helo)
    assert written in header
    parsed = authres.AuthenticationResultsHeader.parse("Authentication-Results: " + header)
    assert [r.method for r in parsed.results] == ["spf", "dkim", "dmarc", "arc"]
