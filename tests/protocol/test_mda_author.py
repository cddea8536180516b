"""Who a message is from: IMAP's ENVELOPE, the TUI, DMARC and Sieve read the same address.

Each message of the table carries one of the known tricks that make two parsers disagree
about the sender. It goes by SMTP through the auth and rules filters of a live server,
and the test reads back what each reader saw.
"""

import smtplib

import authres
import dkim
import imapclient
import pytest

from appliance import mime
from appliance.tui import models
from tests import dns_zone
from tests.conftest import PASSWORD
from tests.mda_helpers import folder, plain, rsa_key, send, wait_for, wire

ALICE = "alice@example.org"
SPOOFER = "spoof@evil.co.uk"  # SPF passes for evil.co.uk from 127.0.0.1

# (case, From field(s) as sent, the addresses every reader must see, dmarc result, header.from)
CASES = [
    ("plain", b"From: Evil <evil@evil.co.uk>", ["evil@evil.co.uk"], "pass", "evil.co.uk"),
    ("two From fields", b"From: evil@evil.co.uk\r\nFrom: ceo@bank.co.uk",
     ["evil@evil.co.uk", "ceo@bank.co.uk"], "fail", "bank.co.uk"),
    ("comment", b"From: evil@evil.co.uk (ceo@bank.co.uk)", ["evil@evil.co.uk"], "pass", "evil.co.uk"),
    ("angle address in a quoted name", b'From: "ceo@bank.co.uk <ceo@bank.co.uk>" <evil@evil.co.uk>',
     ["evil@evil.co.uk"], "pass", "evil.co.uk"),
    ("comma in a quoted name", b'From: "ceo@bank.co.uk, CEO" <evil@evil.co.uk>', ["evil@evil.co.uk"], "pass",
     "evil.co.uk"),
    ("unquoted address as name", b"From: ceo@bank.co.uk <evil@evil.co.uk>", ["evil@evil.co.uk"], "pass",
     "evil.co.uk"),
    ("encoded word naming another address", b"From: =?utf-8?q?ceo=40bank.co.uk?= <evil@evil.co.uk>",
     ["evil@evil.co.uk"], "pass", "evil.co.uk"),
    ("encoded word instead of an address", b"From: =?utf-8?b?Y2VvQGJhbmsuY28udWs=?=",
     ["=?utf-8?b?Y2VvQGJhbmsuY28udWs=?="], "permerror", None),
    ("group named like an address", b"From: ceo@bank.co.uk: evil@evil.co.uk;", ["evil@evil.co.uk"], "pass",
     "evil.co.uk"),
    ("NUL between two addresses", b"From: ceo@bank.co.uk\x00evil@evil.co.uk",
     ["ceo@bank.co.uk", "evil@evil.co.uk"], "fail", "bank.co.uk"),
    ("folded address list", b"From: evil@evil.co.uk,\r\n\tceo@bank.co.uk", ["evil@evil.co.uk", "ceo@bank.co.uk"],
     "fail", "bank.co.uk"),
    ("two at signs", b"From: ceo@bank.co.uk@evil.co.uk", ["ceo@bank.co.uk@evil.co.uk"], "pass", "evil.co.uk"),
    ("no address", b"From: undisclosed-recipients:;", [], "permerror", None),
    # a domain that is no host name has no record to ask: it fails as under p=reject
    ("comma inside the angle address", b"From: <ceo@bank.co.uk,>", ["ceo@bank.co.uk,"], "fail", "bank.co.uk,"),
    ("NUL inside the angle address", b"From: <ceo@bank.co.uk\x00>", ["ceo@bank.co.uk,"], "fail", "bank.co.uk,"),
    ("domain literal", b"From: ceo@[bank.co.uk]", ["ceo@[bank.co.uk]"], "fail", "[bank.co.uk]"),
    ("a result written into the domain", b"From: ceo@bank.co.uk;dmarc=pass", ["ceo@bank.co.uk;dmarc=pass"], "fail",
     "bank.co.uk;dmarc=pass"),
]
KNOWN = sorted({a for case in CASES for a in case[2]} | {"ceo@bank.co.uk"})


@pytest.fixture
def office(make_server):
    zone = dns_zone.Zone()
    zone.add("evil.co.uk", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    zone.add("_dmarc.evil.co.uk", "TXT", "v=DMARC1; p=none")
    zone.add("_dmarc.bank.co.uk", "TXT", "v=DMARC1; p=reject")
    dns, address = dns_zone.start(zone)
    server = make_server(dns={"resolver": address}, mda={"filters": ["auth", "rules"]})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    yield server
    dns.stop()


def sieve_script() -> str:
    """A rule per known address: the flags of a stored copy say which ones Sieve saw."""
    tests = [f'if address :all :is "from" "{a}" {{ addflag "seen{n}"; }}' for n, a in enumerate(KNOWN)]
    return 'require "imap4flags";\n' + "\n".join(tests)


def envelope_addresses(envelope) -> list[str]:
    found = []
    for a in envelope.from_ or ():
        if a.host is None:  # a group's start or end
            continue
        mailbox, host = a.mailbox.decode(), a.host.decode()
        host = "" if host == "MISSING_DOMAIN" else host
        found.append(f"{mailbox}@{host}" if host else mailbox)
    return found


def authentication_results(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    start = head.index("Authentication-Results:")
    end = head.find("\r\n", start)
    while head[end + 2:end + 3] in (" ", "\t"):
        end = head.find("\r\n", end + 2)
    return " ".join(head[start:end].split())


def test_every_reader_sees_the_same_author(office):
    office.admin.rules_set(ALICE, sieve_script())
    for number, (case, author, *_) in enumerate(CASES):
        raw = (author + b"\r\nTo: alice@example.org\r\nSubject: case %d\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
               b"Message-ID: <case%d@evil.co.uk>\r\n\r\nPlease pay.\r\n" % (number, number))
        send(office, raw, sender=SPOOFER)
    wait_for(lambda: len(office.admin.messages(ALICE, "INBOX")) == len(CASES), what="every case delivered")
    shown = {row["subject"]: row["from"] for row in office.admin.messages(ALICE, "INBOX")}

    client = imapclient.IMAPClient("127.0.0.1", port=office.port("imaps"), ssl=True,
                                   ssl_context=office.tls_context(), timeout=10)
    client.login(ALICE, PASSWORD)
    client.select_folder("INBOX")
    fetched = client.fetch(client.search("ALL"), ["ENVELOPE", "FLAGS", "BODY.PEEK[HEADER]"])
    client.logout()
    assert len(fetched) == len(CASES)
    for item in fetched.values():
        envelope = item[b"ENVELOPE"]
        number = int(envelope.subject.decode().split()[1])
        case, _, expected, result, domain = CASES[number]
        assert envelope_addresses(envelope) == expected, f"{case}: IMAP ENVELOPE"
        tui = shown[f"case {number}"]
        assert mime.mailboxes(tui.encode()) == expected, f"{case}: the TUI shows {tui!r}"
        column = models.sender(tui, width=80)
        assert ("ceo@bank.co.uk" in column) == any("ceo@bank.co.uk" in a for a in expected), \
            f"{case}: the TUI's sender column shows {column!r}"
        # read as an RFC 8601 reader does (authres, as dkimpy reads it to seal with ARC)
        parsed = authres.AuthenticationResultsHeader.parse(authentication_results(item[b"BODY[HEADER]"]))
        assert [r.method for r in parsed.results] == ["spf", "dkim", "dmarc", "arc"], f"{case}: {parsed}"
        dmarc = parsed.results[2]
        checked = [p.value for p in dmarc.properties if (p.type, p.name) == ("header", "from")]
        assert (dmarc.result, checked) == (result, [domain] if domain else []), f"{case}: DMARC {dmarc}"
        flags = {f.decode() for f in item[b"FLAGS"] if f.decode().startswith("seen")}
        assert flags == {f"seen{KNOWN.index(a)}" for a in expected}, f"{case}: Sieve saw {flags}"


def test_a_neighbour_under_co_uk_cannot_pass_as_the_bank(make_server):
    pem, public = rsa_key()
    zone = dns_zone.Zone()
    zone.add("sel._domainkey.evil.co.uk", "TXT", f"v=DKIM1; k=rsa; p={public}")
    zone.add("_dmarc.bank.co.uk", "TXT", "v=DMARC1; p=reject")
    zone.add("_dmarc.evil.co.uk", "TXT", "v=DMARC1; p=none")
    dns, address = dns_zone.start(zone)
    try:
        server = make_server(dns={"resolver": address})  # the default filters: auth, then spam
        server.store.add_domain("example.org")
        server.add_user(ALICE)

        def signed(author: str, subject: str) -> bytes:
            raw = wire(plain(sender=author, subject=subject))
            return dkim.sign(raw, b"sel", b"evil.co.uk", pem, include_headers=[b"from", b"subject"]) + raw

        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(server, signed("CEO <ceo@bank.co.uk>", "Transfer today"), sender="ceo@evil.co.uk")
        assert refused.value.smtp_code == 550  # bank.co.uk's p=reject, scored by the spam filter
        send(server, signed("Eve <eve@evil.co.uk>", "Our own news"), sender="eve@evil.co.uk")
        [delivered] = folder(server, ALICE)
        assert "dmarc=pass header.from=evil.co.uk" in authentication_results(delivered)
    finally:
        dns.stop()
