"""Hostile input is answered with BAD/NO while the server keeps serving everyone else."""

import threading

from tests.protocol.imapconv import Conversation, deliver, message, session


def hostile(server, results: list, index: int) -> None:
    conv = session(server, f"mallory{index}@example.org")
    conv.transact("OK", "SELECT INBOX")
    for command in ("FETCH 0 FLAGS", "FETCH 1:99999999999 FLAGS", "UID FETCH 0:* FLAGS",
                    "SEARCH " + "NOT " * 100 + "ALL", "FETCH 1 " + "(" * 100,
                    "STORE 1 FLAGS " + "(" * 30 + ")" * 30, 'LIST "" ' + "%" * 5000,
                    "SELECT " + "x" * 5000, "APPEND INBOX (\\Seen) {99999999999999}"):
        tag = conv.next_tag()
        conv.send(f"{tag} {command}")
        _, tagged = conv.read_until(tag)
        results[index].append(tagged.split(b" ")[1])


def test_hostile_clients_do_not_disturb_others(server):
    deliver(server, "alice@example.org", message("important"))
    results = [[] for _ in range(4)]
    threads = [threading.Thread(target=hostile, args=(server, results, i)) for i in range(4)]
    for t in threads:
        t.start()
    good = session(server)
    good.transact("OK", "SELECT INBOX")
    for _ in range(20):
        lines = [l for l in good.transact("OK", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])") if b"FETCH" in l]
        assert b"important" in lines[0]
    for t in threads:
        t.join()
    for outcome in results:
        assert outcome[:5] == [b"BAD"] * 5 and outcome[-1] == b"NO", outcome
        assert set(outcome) <= {b"BAD", b"NO", b"OK"}


def test_empty_mailbox_sequence_numbers(server):
    conv = session(server)
    conv.transact("OK", "SELECT Trash")
    conv.transact("BAD", "FETCH 1 FLAGS")
    conv.transact("BAD", "FETCH * FLAGS")
    assert conv.transact("OK", "UID FETCH 1:* FLAGS") == []
    assert conv.transact("OK", "SEARCH ALL") == [b"* SEARCH"]
    conv.transact("OK", "UID STORE 1:* +FLAGS (\\Seen)")
    conv.transact("OK", "UID COPY 1:* INBOX")


def test_garbage_before_login(server):
    conv = Conversation.open(server, "imap")
    conv.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS hello on the plain port
    assert conv.line().startswith(b"* BAD")
    conv.send("GET / HTTP/1.1")
    assert conv.line().startswith(b"GET BAD")
    conv.transact("OK", "NOOP")
