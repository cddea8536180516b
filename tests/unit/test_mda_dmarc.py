"""DMARC (RFC 7489): organizational domains from the Public Suffix List, strict and relaxed
alignment, the policy lookup's fallback to the organizational domain, several From fields."""

import authres
import dkim
import pytest

from appliance.mda.auth import MAX_AUTHOR_DOMAINS, aligned, canonical, is_host_name, organizational
from appliance.mda.spam import heuristics
from tests import dns_zone
from tests.mda_helpers import authenticate, rsa_key

SIGNERS = ("evil.co.uk", "bank.co.uk", "mail.bank.co.uk", "toko.co.id", "mail.toko.co.id", "strict.co.id",
           "mail.strict.co.id", "alice.github.io", "bob.github.io", "xn--bcher-kva.de")


@pytest.mark.parametrize("domain, org", [
    ("mail.bank.co.uk", "bank.co.uk"),
    ("bank.co.uk", "bank.co.uk"),
    ("co.uk", "co.uk"),  # a public suffix is its own organizational domain
    ("a.b.shop.com.au", "shop.com.au"),
    ("mail.pajak.go.id", "pajak.go.id"),
    ("mail.gov.id", "gov.id"),  # gov.id is not on the list: id is the suffix
    ("mail.ui.ac.id", "ui.ac.id"),
    ("mx.toko.co.id", "toko.co.id"),
    ("www.alice.github.io", "alice.github.io"),  # a private suffix counts as a suffix
    ("mail.bücher.de", "xn--bcher-kva.de"),
    ("mail.xn--bcher-kva.de", "xn--bcher-kva.de"),
    ("MAIL.Bank.CO.UK", "bank.co.uk"),
    ("mail.bank.co.uk.", "bank.co.uk"),
    ("x.example.unknowntld", "example.unknowntld"),  # the list's default rule: "*"
])
def test_organizational_domain_from_the_public_suffix_list(domain, org):
    assert organizational(domain) == org


@pytest.mark.parametrize("domain, expected", [
    ("bank.co.uk", True), ("Mail.BANK.co.uk.", True), ("bücher.de", True), ("xn--bcher-kva.de", True),
    ("localhost", True), ("a-b.example", True),
    ("bank.co.uk,", False), ("[bank.co.uk]", False), ("[192.0.2.1]", False), ("bank.co.uk;dmarc=pass", False),
    ("bank..co.uk", False), ("-bank.co.uk", False), ("bank_x.co.uk", False), ("b" * 64 + ".example", False),
])
def test_host_names(domain, expected):
    assert is_host_name(canonical(domain)) is expected


@pytest.mark.parametrize("domain, author, strict, expected", [
    ("evil.co.uk", "bank.co.uk", False, False),  # two registrants under one public suffix
    ("mail.bank.co.uk", "bank.co.uk", False, True),
    ("mail.bank.co.uk", "bank.co.uk", True, False),
    ("Bank.CO.UK.", "bank.co.uk", True, True),
    ("bob.github.io", "alice.github.io", False, False),
    ("toko.co.id", "other.co.id", False, False),
    ("xn--bcher-kva.de", "mail.bücher.de", False, True),
])
def test_alignment(domain, author, strict, expected):
    assert aligned(domain, author, strict) is expected


@pytest.fixture(scope="module")
def key():
    return rsa_key()


@pytest.fixture(scope="module")
def zone(key):
    z = dns_zone.Zone()
    for domain in SIGNERS:
        z.add(f"sel._domainkey.{domain}", "TXT", f"v=DKIM1; k=rsa; p={key[1]}")
    z.add("_dmarc.bank.co.uk", "TXT", "v=DMARC1; p=reject; sp=quarantine")
    z.add("_dmarc.own.bank.co.uk", "TXT", "v=DMARC1; p=none")
    z.add("_dmarc.evil.co.uk", "TXT", "v=DMARC1; p=none")
    z.add("_dmarc.toko.co.id", "TXT", "v=DMARC1; p=reject")
    z.add("_dmarc.strict.co.id", "TXT", "v=DMARC1; p=quarantine; adkim=s; aspf=s")
    z.add("_dmarc.alice.github.io", "TXT", "v=DMARC1; p=reject")
    z.add("_dmarc.xn--bcher-kva.de", "TXT", "v=DMARC1; p=reject")
    for domain in ("evil.co.uk", "mail.toko.co.id", "mail.strict.co.id", "strict.co.id"):
        z.add(domain, "TXT", "v=spf1 ip4:127.0.0.1 -all")
    server, address = dns_zone.start(z)
    yield address
    server.stop()


def message(author: bytes, extra: bytes = b"") -> bytes:
    return (b"From: " + author + b"\r\n" + extra + b"To: alice@example.org\r\nSubject: payment\r\n"
            b"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@x.test>\r\n\r\nPlease pay today.\r\n")


def signed(key, raw: bytes, domain: str) -> bytes:
    return dkim.sign(raw, b"sel", domain.encode(), key[0], include_headers=[b"from", b"subject", b"to"]) + raw


def check(zone, raw: bytes, sender: str = "bounce@nowhere.test", client_ip: str = "192.0.2.9"):
    """The Authentication-Results value, the notes for the spam filter, and the message."""
    return authenticate(raw, zone, sender=sender, client_ip=client_ip)


def test_the_attack_dkim_of_a_neighbour_under_co_uk_fails_dmarc(zone, key):
    raw = signed(key, message(b"CEO <ceo@bank.co.uk>"), "evil.co.uk")
    header, notes, msg = check(zone, raw, sender="ceo@evil.co.uk", client_ip="127.0.0.1")
    assert notes["dkim"] == ["pass"] and notes["spf"] == "pass"  # both genuine, both for evil.co.uk
    assert "dmarc=fail header.from=bank.co.uk" in header
    assert notes["dmarc"] == "fail" and notes["dmarc_policy"] == "reject"
    assert ("DMARC_REJECT", 15.0) in heuristics(msg)  # the spam filter keeps the penalty


def test_relaxed_dkim_alignment_by_organizational_domain(zone, key):
    header, notes, msg = check(zone, signed(key, message(b"ceo@bank.co.uk"), "mail.bank.co.uk"))
    assert "dmarc=pass header.from=bank.co.uk" in header
    assert not [h for h in heuristics(msg) if h[0].startswith("DMARC")]


def test_strict_dkim_alignment_wants_the_same_domain(zone, key):
    _, notes, _ = check(zone, signed(key, message(b"sales@strict.co.id"), "mail.strict.co.id"))
    assert notes["dmarc"] == "fail" and notes["dmarc_policy"] == "quarantine"
    _, notes, _ = check(zone, signed(key, message(b"sales@strict.co.id"), "strict.co.id"))
    assert notes["dmarc"] == "pass"


def test_relaxed_and_strict_spf_alignment(zone):
    _, notes, _ = check(zone, message(b"sales@toko.co.id"), sender="bounce@mail.toko.co.id", client_ip="127.0.0.1")
    assert notes["spf"] == "pass" and notes["dmarc"] == "pass"
    _, notes, _ = check(zone, message(b"sales@strict.co.id"), sender="bounce@mail.strict.co.id",
                        client_ip="127.0.0.1")
    assert notes["spf"] == "pass" and notes["dmarc"] == "fail"
    _, notes, _ = check(zone, message(b"sales@strict.co.id"), sender="bounce@strict.co.id", client_ip="127.0.0.1")
    assert notes["dmarc"] == "pass"


def test_a_subdomain_without_a_record_gets_the_organizations_sp(zone):
    header, notes, _ = check(zone, message(b"noreply@alerts.bank.co.uk"))
    assert notes["dmarc"] == "fail" and notes["dmarc_policy"] == "quarantine"
    assert "header.from=alerts.bank.co.uk" in header
    _, notes, _ = check(zone, message(b"noreply@own.bank.co.uk"))  # its own record wins
    assert notes["dmarc"] == "fail" and notes["dmarc_policy"] == "none"
    _, notes, _ = check(zone, message(b"ceo@bank.co.uk"))
    assert notes["dmarc_policy"] == "reject"


def test_no_record_anywhere_is_none(zone):
    header, notes, _ = check(zone, message(b"someone@mail.nowhere.test"))
    assert notes["dmarc"] == "none" and "dmarc=none header.from=mail.nowhere.test" in header


def test_private_suffix_github_io(zone, key):
    _, notes, _ = check(zone, signed(key, message(b"alice@alice.github.io"), "bob.github.io"))
    assert notes["dmarc"] == "fail" and notes["dmarc_policy"] == "reject"
    _, notes, _ = check(zone, signed(key, message(b"alice@www.alice.github.io"), "alice.github.io"))
    assert notes["dmarc"] == "pass"


def test_idn_author_aligns_with_its_a_label_signature(zone, key):
    header, notes, _ = check(zone, signed(key, message("info@bücher.de".encode()), "xn--bcher-kva.de"))
    assert notes["dmarc"] == "pass" and "header.from=xn--bcher-kva.de" in header


def test_upper_case_and_trailing_dot_in_from(zone, key):
    _, notes, _ = check(zone, signed(key, message(b"CEO@Mail.BANK.co.uk."), "bank.co.uk"))
    assert notes["dmarc"] == "pass"


def test_two_from_fields_are_never_aligned(zone, key):
    # RFC 7489 §6.6.1: the second From field makes the message fail, under the strictest policy
    raw = message(b"me@evil.co.uk", b"From: ceo@bank.co.uk\r\n")
    header, notes, msg = check(zone, raw, sender="me@evil.co.uk", client_ip="127.0.0.1")
    assert notes["spf"] == "pass"  # aligned with the first From field
    assert notes["dmarc"] == "fail" and notes["dmarc_policy"] == "reject" and "header.from=bank.co.uk" in header
    raw = message(b"me@evil.co.uk", b"From: me@evil.co.uk\r\n")
    _, notes, _ = check(zone, raw, sender="me@evil.co.uk", client_ip="127.0.0.1")
    assert notes["dmarc"] == "fail" and notes["dmarc_policy"] == "none"


def test_one_from_field_with_two_domains_fails_for_the_one_not_aligned(zone, key):
    raw = signed(key, message(b"me@evil.co.uk, ceo@bank.co.uk"), "evil.co.uk")
    _, notes, _ = check(zone, raw)
    assert notes["dmarc"] == "fail" and notes["dmarc_policy"] == "reject"


def test_a_from_without_an_address_is_a_permanent_error(zone):
    header, notes, msg = check(zone, message(b"=?utf-8?q?ceo=40bank.co.uk?="))
    assert notes["dmarc"] == "permerror" and "header.from" not in header
    assert ("MISSING_FROM", 2.0) in heuristics(msg)


def test_a_from_of_more_domains_than_are_looked_up_fails_as_reject(zone):
    # none of these has a record: looked up one by one, they would all be "none"
    many = b", ".join(b"someone@d%d.nowhere.test" % i for i in range(MAX_AUTHOR_DOMAINS + 1))
    header, notes, _ = check(zone, message(many))
    assert notes["dmarc"] == "fail" and notes["dmarc_policy"] == "reject" and "header.from=d0.nowhere.test" in header


@pytest.mark.parametrize("author, domain", [
    (b"<ceo@bank.co.uk,>", "bank.co.uk,"),
    (b"CEO <ceo@bank.co.uk\x00>", "bank.co.uk,"),  # a control character ends an entry, as a comma does
    (b"ceo@[bank.co.uk]", "[bank.co.uk]"),
    (b"ceo@bank.co.uk;dmarc=pass", "bank.co.uk;dmarc=pass"),
    (b"ceo@bank..co.uk", "bank..co.uk"),
])
def test_a_from_domain_that_is_no_host_name_fails_as_under_reject(zone, author, domain):
    # a reader shows each as the bank's, and bank.co.uk says p=reject; none has a record to ask
    header, notes, msg = check(zone, message(author), sender="me@evil.co.uk", client_ip="127.0.0.1")
    assert notes["spf"] == "pass" and notes["dmarc"] == "fail" and notes["dmarc_policy"] == "reject"
    assert ("DMARC_REJECT", 15.0) in heuristics(msg)
    # what DMARC checked is written so that a reader finds it, and no result it may hide
    parsed = authres.AuthenticationResultsHeader.parse("Authentication-Results: " + header)
    assert [r.method for r in parsed.results] == ["spf", "dkim", "dmarc", "arc"]
    assert [(p.type, p.name, p.value) for p in parsed.results[2].properties] == [("header", "from", domain)]
