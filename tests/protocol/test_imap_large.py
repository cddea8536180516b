"""A 10,000-message mailbox: FETCH 1:* and SEARCH TEXT give exact results, quickly enough."""

import time
from concurrent.futures import ThreadPoolExecutor

from appliance.store import Delivery
from tests.protocol.imapconv import session

COUNT = 10_000


def raw(i: int) -> bytes:
    word = "needle" if i % 100 == 7 else "hay"
    return (f"From: Sender {i} <s{i}@example.net>\r\nTo: alice@example.org\r\nSubject: message number {i}\r\n"
            f"Date: Mon, 4 Mar 2024 10:00:00 +0000\r\n\r\nBody of message {i} with the word {word}.\r\n").encode()


def test_ten_thousand_messages(server):
    user = server.add_user("alice@example.org")
    # many writers share commits (group commit), which keeps the set-up short
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda i: server.store.deliver(raw(i), [Delivery(user.id)]), range(COUNT)))
    conv = session(server)
    untagged = conv.transact("OK", "SELECT INBOX")
    assert b"* %d EXISTS" % COUNT in untagged

    start = time.monotonic()
    lines = [l for l in conv.transact("OK", "FETCH 1:* (UID FLAGS ENVELOPE)") if b" FETCH " in l]
    fetch_seconds = time.monotonic() - start
    assert len(lines) == COUNT
    assert [int(l.split(b" ")[1]) for l in lines] == list(range(1, COUNT + 1))
    assert all(b"(UID %d FLAGS (\\Recent) ENVELOPE (" % n in l for n, l in enumerate(lines, 1))
    subjects = {l.split(b'"message number ')[1].split(b'"')[0] for l in lines}
    assert len(subjects) == COUNT

    start = time.monotonic()
    (hits,) = conv.transact("OK", "SEARCH TEXT needle")
    search_seconds = time.monotonic() - start
    numbers = [int(n) for n in hits.split()[2:]]
    assert len(numbers) == COUNT // 100
    fetched = [l for l in conv.transact("OK", "FETCH %d BODY.PEEK[TEXT]" % numbers[0]) if b" FETCH " in l]
    assert b"needle" in fetched[0]
    (by_text,) = conv.transact("OK", 'UID SEARCH TEXT "NUMBER 1234"')  # the subject, case-insensitively
    (by_subject,) = conv.transact("OK", 'UID SEARCH SUBJECT "number 1234"')
    assert by_text == by_subject and len(by_text.split()) == 3
    # generous bounds: a slow CI box must pass; the benchmark measures the real figures
    assert fetch_seconds < 10 and search_seconds < 2, (fetch_seconds, search_seconds)
