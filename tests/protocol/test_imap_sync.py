"""Changes made elsewhere reach a selected session at the moments RFC 3501 allows,
and IDLE pushes them within 100 ms."""

import smtplib
import threading
import time

import pytest

from tests.protocol.imapconv import deliver, message, session


def test_two_sessions_see_each_others_changes(server):
    deliver(server, "alice@example.org", message("1"))
    deliver(server, "alice@example.org", message("2"))
    a = session(server)
    b = session(server)
    a.transact("OK", "SELECT INBOX")
    b.transact("OK", "SELECT INBOX")
    a.transact("OK", "STORE 1 +FLAGS.SILENT (\\Seen)")
    # b may be served by another worker: it still hears of a's acknowledged STORE first
    assert b.transact("OK", "NOOP") == [b"* 1 FETCH (UID 1 FLAGS (\\Seen))"]
    b.transact("OK", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.transact("OK", "EXPUNGE")
    deliver(server, "alice@example.org", message("3"))
    # expunge first, then the new count; \Recent went to the first session that saw it
    untagged = a.transact("OK", "NOOP")
    assert untagged[:2] == [b"* 2 EXPUNGE", b"* 2 EXISTS"]
    lines = [l for l in a.transact("OK", "FETCH 1:* (UID FLAGS)") if b"FETCH" in l]
    assert [l.split(b"(UID ")[1].split(b" ")[0] for l in lines] == [b"1", b"3"]


def test_no_expunge_during_fetch_store_or_search_by_sequence_number(server):
    for n in range(3):
        deliver(server, "alice@example.org", message(str(n)))
    a = session(server)
    b = session(server)
    a.transact("OK", "SELECT INBOX")
    b.transact("OK", "SELECT INBOX")
    b.transact("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.transact("OK", "EXPUNGE")
    for command in ("FETCH 1:* UID", "STORE 3 +FLAGS (\\Flagged)", "SEARCH ALL"):
        untagged = a.transact("OK", command)
        assert not any(b"EXPUNGE" in l for l in untagged), (command, untagged)
    # numbers stay as the client knows them until an expunge may be told
    assert a.transact("OK", "SEARCH ALL") == [b"* SEARCH 2 3"]
    untagged = a.transact("OK", "UID FETCH 1:* UID")  # the UID form may be told
    assert untagged[-1] == b"* 1 EXPUNGE"
    assert a.transact("OK", "SEARCH ALL") == [b"* SEARCH 1 2"]


def idle(conv):
    conv.send("i1 IDLE")
    assert conv.line() == b"+ idling"


def timed_line(conv) -> tuple[bytes, float]:
    line = conv.line()
    return line, time.monotonic()


def test_idle_pushes_delivery_flag_change_and_expunge_within_100ms(server):
    deliver(server, "alice@example.org", message("old"))
    watcher = session(server)
    watcher.transact("OK", "SELECT INBOX")
    actor = session(server)
    actor.transact("OK", "SELECT INBOX")
    idle(watcher)
    for action, expected in (
        (lambda: deliver(server, "alice@example.org", message("new")), b"* 2 EXISTS"),
        (lambda: actor.transact("OK", "STORE 1 +FLAGS.SILENT (\\Flagged)"), b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))"),
        (lambda: (actor.transact("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)"), actor.transact("OK", "EXPUNGE")), b"* 1 EXPUNGE"),
    ):
        start = time.monotonic()
        action()
        done = time.monotonic()
        line, seen = timed_line(watcher)
        while line != expected and b"EXPUNGE" in expected:
            line, seen = timed_line(watcher)  # the \Deleted flag change comes first
        assert line == expected
        assert seen - done < 0.1, f"pushed {seen - done:.3f}s after the commit"
        assert seen - start < 2
        if expected.endswith(b"EXISTS"):
            assert watcher.line() == b"* 2 RECENT"
    watcher.send("DONE")
    assert watcher.line().startswith(b"i1 OK")
    watcher.transact("OK", "NOOP")


def test_idle_reports_smtp_delivery(server):
    watcher = session(server)
    watcher.transact("OK", "SELECT INBOX")
    idle(watcher)
    try:
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
            start = time.monotonic()
            smtp.sendmail("someone@example.net", ["alice@example.org"], message("via smtp"))
            acknowledged = time.monotonic()
    except (smtplib.SMTPException, ConnectionError) as exc:
        pytest.skip(f"SMTP session not usable here: {exc}")
    line, seen = timed_line(watcher)
    assert line == b"* 1 EXISTS"
    assert seen - acknowledged < 0.1 and seen - start < 5
    assert watcher.line() == b"* 1 RECENT"
    watcher.send("DONE")
    assert watcher.line().startswith(b"i1 OK")


def test_idle_hears_a_flag_change_too_big_for_the_pusher(server):
    # 600 FETCH lines are more than the pusher writes itself: the session's own thread does
    for n in range(600):
        deliver(server, "alice@example.org", message(str(n)))
    watcher = session(server)
    watcher.transact("OK", "SELECT INBOX")
    actor = session(server)
    actor.transact("OK", "SELECT INBOX")
    idle(watcher)
    actor.transact("OK", "STORE 1:* +FLAGS.SILENT (\\Flagged)")
    told = {watcher.line() for _ in range(600)}
    assert told == {b"* %d FETCH (UID %d FLAGS (\\Flagged \\Recent))" % (n, n) for n in range(1, 601)}
    watcher.send("DONE")
    assert watcher.line().startswith(b"i1 OK")
    watcher.transact("OK", "NOOP")


def test_idle_must_end_with_done(server):
    conv = session(server)
    conv.transact("OK", "SELECT INBOX")
    idle(conv)
    conv.send("NOOP")
    assert conv.line().startswith(b"i1 BAD")
    conv.transact("OK", "NOOP")


@pytest.mark.parametrize("idling", [False, True], ids=["next-command", "idling"])
def test_deleting_the_selected_mailbox_elsewhere_ends_the_session(server, idling):
    a = session(server)
    a.transact("OK", "CREATE Temp")
    a.transact("OK", "SELECT Temp")
    if idling:
        idle(a)  # told by the pusher, without a command
    session(server).transact("OK", "DELETE Temp")
    if idling:
        assert a.line().startswith(b"* BYE")
        return
    # the other session may be another worker's: the next command still hears of the DELETE
    a.send("t9 NOOP")
    said = a.line()
    assert said.startswith(b"* BYE"), said


def test_many_writers_keep_sequence_numbers_exact(server):
    for n in range(20):
        deliver(server, "alice@example.org", message(str(n)))
    watcher = session(server)
    watcher.transact("OK", "SELECT INBOX")
    workers = [session(server) for _ in range(3)]

    def churn(conv, uids):
        conv.transact("OK", "SELECT INBOX")
        for uid in uids:
            conv.transact("OK", f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
            conv.transact("OK", f"UID EXPUNGE {uid}")
            deliver(server, "alice@example.org", message(f"again {uid}"))

    threads = [threading.Thread(target=churn, args=(conv, range(i + 1, 21, 3))) for i, conv in enumerate(workers)]
    for t in threads:
        t.start()
    for _ in range(10):
        watcher.transact("OK", "NOOP")
    for t in threads:
        t.join()
    watcher.transact("OK", "NOOP")
    lines = [l for l in watcher.transact("OK", "FETCH 1:* UID") if b" FETCH " in l]
    uids = [int(l.split(b"UID ")[1].rstrip(b")")) for l in lines]
    assert [int(l.split(b" ")[1]) for l in lines] == list(range(1, 21))
    assert uids == sorted(uids) and min(uids) > 20
