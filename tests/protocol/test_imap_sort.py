"""SORT and THREAD (RFC 5256, RFC 5957), ESORT and search contexts (RFC 5267)."""

import re

import pytest

from tests.protocol.imapconv import deliver, session


def mail(subject: str, sender: str, to: str, date: str, size: int = 0, cc: str = "", message_id: str = "",
         references: str = "", in_reply_to: str = "") -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
    if date:
        head += f"Date: {date}\r\n"
    if cc:
        head += f"Cc: {cc}\r\n"
    if message_id:
        head += f"Message-ID: <{message_id}>\r\n"
    if references:
        head += f"References: {references}\r\n"
    if in_reply_to:
        head += f"In-Reply-To: {in_reply_to}\r\n"
    return (head + "\r\n" + "x" * size + "\r\n").encode()


# Five messages whose every key puts them in a different order (ARRIVAL is delivery order).
BOX = [
    mail("Re: banana", "Zed <zed@x.org>", "Carl <carl@y.org>", "Mon, 4 Mar 2024 10:00:00 +0000", 300,
         cc="mia@z.org"),
    mail("apple", "\"Ann\" <bob@x.org>", "al@y.org", "Mon, 4 Mar 2024 09:00:00 -0300", 100, cc="Nils <nils@z.org>"),
    mail("[list] Cherry", "ed@x.org", "Bea <zoe@y.org>", "Sun, 3 Mar 2024 23:00:00 +0000", 500),
    mail("Fwd: Apple (fwd)", "Yvonne <amy@x.org>", "dan@y.org", "", 200, cc="ann@z.org"),
    mail("Érable", "mo@x.org", "=?utf-8?q?=C3=89mile?= <bo@y.org>", "Tue, 5 Mar 2024 08:00:00 +0000", 400),
]


@pytest.fixture
def sorted_box(server):
    conv = session(server)
    for raw in BOX:
        deliver(server, "alice@example.org", raw)
    conv.transact("OK", "SELECT INBOX")
    return conv


def sort(conv, command: str) -> list[int]:
    (line,) = [l for l in conv.transact("OK", command) if l.startswith(b"* SORT")]
    return [int(n) for n in line.split()[2:]]


# Expected orders, by sequence number. Message 4 has no Date: its INTERNALDATE (the
# delivery, now) is its sent date, so it sorts last by DATE.
ORDERS = {
    "ARRIVAL": [1, 2, 3, 4, 5],
    "SIZE": [2, 4, 1, 5, 3],
    "DATE": [3, 1, 2, 5, 4],  # 2 is 12:00 UTC
    "SUBJECT": [2, 4, 1, 3, 5],  # apple = apple (ties by number), banana, cherry, érable
    "FROM": [4, 2, 3, 5, 1],  # amy bob ed mo zed
    "TO": [2, 5, 1, 4, 3],  # al bo carl dan zoe
    "CC": [3, 5, 4, 1, 2],  # empty ones first, then ann mia nils
    "DISPLAYFROM": [2, 3, 5, 4, 1],  # Ann ed@x.org mo@x.org Yvonne Zed
    "DISPLAYTO": [2, 3, 1, 4, 5],  # al@y.org Bea Carl dan@y.org Émile
}


TIED_REVERSED = {"SUBJECT": [5, 3, 1, 2, 4], "CC": [2, 1, 4, 3, 5]}


@pytest.mark.parametrize("key", sorted(ORDERS))
def test_every_sort_key_and_its_reverse(sorted_box, key):
    conv = sorted_box
    assert sort(conv, f"SORT ({key}) UTF-8 ALL") == ORDERS[key]
    reverse = sort(conv, f"SORT (REVERSE {key}) US-ASCII ALL")
    uid_order = sort(conv, f"UID SORT (REVERSE {key}) UTF-8 ALL")
    assert uid_order == reverse  # UIDs are 1..5 here
    # ties stay in sequence order even when reversed (RFC 5256 §3)
    assert reverse == TIED_REVERSED.get(key, ORDERS[key][::-1])
