"""mime.author and mime.mailboxes: the one reading of From (and of any address list) that
ENVELOPE, the TUI, DMARC, Sieve, receipts and the DKIM signing domain share."""

import pytest

from appliance import mime
from appliance.mime.headers import display_addresses, parse_addresses
from appliance.mta.queue import author_domain


def head(*lines: bytes) -> list[tuple[str, bytes]]:
    return mime.header_fields(b"\r\n".join(lines) + b"\r\n\r\n")


@pytest.mark.parametrize("value, addresses", [
    (b"Alice <alice@example.org>", ["alice@example.org"]),
    (b"alice@example.org (Alice <ceo@bank.example>)", ["alice@example.org"]),
    (b'"Bank, CEO <ceo@bank.example>" <evil@evil.example>', ["evil@evil.example"]),
    (b"=?utf-8?q?ceo=40bank.example?= <evil@evil.example>", ["evil@evil.example"]),
    (b"=?utf-8?q?ceo=40bank.example?=", ["=?utf-8?q?ceo=40bank.example?="]),  # never decoded into an address
    (b"ceo@bank.example\x00evil@evil.example", ["ceo@bank.example", "evil@evil.example"]),
    (b"ceo@bank.example\x1bevil@evil.example", ["ceo@bank.example", "evil@evil.example"]),
    (b"Team: a@x.example, b@y.example;, c@z.example", ["a@x.example", "b@y.example", "c@z.example"]),
    (b"undisclosed-recipients:;", []),
    (b"<>", []),
    ("Jörg <jörg@bücher.de>".encode(), ["jörg@bücher.de"]),
])
def test_mailboxes_read_the_raw_bytes(value, addresses):
    assert mime.mailboxes(value) == addresses


@pytest.mark.parametrize("value", [
    b'"Bank, CEO <ceo@bank.example>" <evil@evil.example>',
    b"=?utf-8?q?ceo=40bank.example=2C_x=3Cy=40z=3E?= <evil@evil.example>",
    b'"a \\" b" <a@x.example>, Team: b@y.example;',
    b"=?utf-8?q?Team=2C_ceo=40bank.example?=: b@y.example;",
    b"ceo@bank.example@evil.example",
    b'"ceo\x00"@evil.example',
    b"<ceo@bank.example,>",  # a comma inside the angle address is part of its domain
    b"<ceo@bank.example\x00>",
    b"ceo@bank.example;x=y",
    b"ceo@[bank.example]",
])
def test_the_displayed_text_names_the_same_addresses(value):
    shown = display_addresses(value)
    assert mime.mailboxes(shown.encode()) == mime.mailboxes(value), shown


def test_a_local_part_that_holds_an_at_sign_is_shown_quoted():
    assert display_addresses(b"ceo@bank.example@evil.example") == '"ceo@bank.example"@evil.example'


def test_a_domain_holding_a_special_is_shown_in_angle_brackets():
    assert display_addresses(b"<ceo@bank.example,>") == "<ceo@bank.example,>"
    assert display_addresses(b"ceo@[bank.example]") == "ceo@[bank.example]"


def test_author_of_one_from_field():
    author = mime.author(head(b"From: Alice <Alice@Example.ORG.>", b"To: b@x.example"))
    assert author.single and author.addresses == ("Alice@Example.ORG.",) and author.domains == ("example.org",)


def test_two_from_fields_are_one_author_no_more():
    author = mime.author(head(b"From: me@evil.example", b"Subject: x", b"from: ceo@bank.example"))
    assert author.fields == 2 and not author.single
    assert author.domains == ("evil.example", "bank.example")


def test_no_single_author_without_a_domain():
    assert not mime.author(head(b"From: undisclosed-recipients:;")).single
    assert not mime.author(head(b"From: =?utf-8?q?ceo=40bank.example?=")).single
    assert not mime.author(head(b"Subject: no From")).single
    assert mime.author(head(b"From: a@x.example, b@x.example")).single  # one domain, two people


def test_envelope_and_display_list_every_from_field():
    raw = b"From: me@evil.example\r\nFrom: CEO <ceo@bank.example>\r\nSubject: x\r\n\r\nbody\r\n"
    info = mime.analyze(raw)
    assert b'((NIL NIL "me" "evil.example")("CEO" NIL "ceo" "bank.example"))' in info.envelope
    assert info.from_ == "me@evil.example, CEO <ceo@bank.example>"


def test_a_control_character_ends_an_address():
    [first, second] = parse_addresses(b"ceo@bank.example\x00evil@evil.example")
    assert (first.mailbox, first.host, second.mailbox, second.host) == ("ceo", "bank.example", "evil", "evil.example")


@pytest.mark.parametrize("header, domain", [
    (b"From: Alice <alice@Example.ORG>\r\n", "example.org"),
    (b"From: a@example.org\r\nFrom: b@example.org\r\n", ""),  # RFC 7489 §6.6.1: not aligned, so not signed as it
    (b"From: a@example.org, b@other.example\r\n", ""),
    (b"From: =?utf-8?q?a=40example.org?=\r\n", ""),
    (b"Subject: no author\r\n", ""),
])
def test_the_queue_signs_for_the_author_dmarc_will_check(header, domain):
    assert author_domain(header + b"To: x@y.example\r\n\r\nbody\r\n") == domain
