"""The store against a temp-file SQLite database: accounts, UIDs, blobs, events, concurrency."""

import json
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any, NamedTuple

import pytest

from appliance.store import (AlreadyExists, Delivery, InvalidName, Notice, NotFound, QueueEntry, QuotaExceeded, ScriptActive,
                             Store, StoreError)

MSG = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hello\r\n\r\nThe quick brown fox.\r\n"


def test_new_user_gets_special_use_folders(store):
    user = store.add_user("alice@example.org", "pw")
    folders = {m.name: m.special_use for m in store.list_mailboxes(user.id)}
    assert folders == {"INBOX": None, "Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash",
                       "Junk": "\\Junk", "Archive": "\\Archive"}


def test_account_errors_change_nothing(store):
    store.add_user("alice@example.org", "pw")
    with pytest.raises(AlreadyExists):
        store.add_user("ALICE@example.org", "pw")
    with pytest.raises(NotFound):
        store.add_user("bob@elsewhere.org", "pw")
    with pytest.raises(InvalidName):
        store.add_user("not an address", "pw")
    store.add_alias("a@example.org", ["alice@example.org"])
    store.add_alias("b@example.org", ["a@example.org"])
    with pytest.raises(StoreError, match="loop"):
        store.add_alias("a@example.org", ["b@example.org"])
    with pytest.raises(NotFound, match="did you mean alice@example.org"):
        store.add_alias("c@example.org", ["alcie@example.org", "friend@elsewhere.org"])
    assert store.list_aliases() == {"a@example.org": ["alice@example.org"], "b@example.org": ["a@example.org"]}
    assert [u.address for u, _ in store.list_users()] == ["alice@example.org"]


def test_password_is_hashed_and_checked(store):
    store.add_user("alice@example.org", "s3cret")
    with store.db.reader() as conn:
        stored = conn.execute("SELECT password FROM users").fetchone()[0]
    assert "s3cret" not in stored and stored.startswith("scrypt$")
    assert store.verify_password("Alice@Example.org", "s3cret").address == "alice@example.org"
    assert store.verify_password("alice@example.org", "wrong") is None
    assert store.verify_password("nobody@example.org", "s3cret") is None


def test_aliases_lists_and_catch_all_resolve(store):
    alice = store.add_user("alice@example.org", "pw")
    bob = store.add_user("bob@example.org", "pw")
    store.add_alias("team@example.org", ["alice@example.org", "bob@example.org", "friend@remote.net"])
    team = store.resolve("TEAM@example.org")
    assert {u.id for u in team.users} == {alice.id, bob.id} and team.external == ("friend@remote.net",)
    assert store.resolve("stranger@example.org") is None
    store.add_alias("@example.org", ["alice@example.org"])
    assert [u.id for u in store.resolve("stranger@example.org").users] == [alice.id]


def test_identical_bytes_are_stored_once_and_freed_with_the_last_reference(store):
    users = [store.add_user(f"u{i}@example.org", "pw") for i in range(20)]
    store.deliver(MSG, [Delivery(u.id) for u in users])
    assert store.counts()["blobs"] == 1 and store.counts()["messages"] == 20
    for u in users[:19]:
        inbox = store.get_mailbox(u.id, "INBOX")
        store.delete_messages(inbox.id, [1])
    assert store.counts()["blobs"] == 1
    last = store.get_mailbox(users[19].id, "INBOX")
    store.delete_messages(last.id, [1])
    assert store.counts()["blobs"] == 0
    assert store.search_text(last.id, "quick") == set()


def test_uids_ascend_and_are_never_reused(tmp_path):
    store = Store.in_folder(tmp_path)
    store.add_domain("example.org")
    user = store.add_user("alice@example.org", "pw")
    inbox = store.get_mailbox(user.id, "INBOX")
    for n in range(3):
        store.deliver(MSG + b"%d" % n, [Delivery(user.id)])
    store.store_flags(inbox.id, [3], "add", ["\\Deleted"])
    assert store.expunge(inbox.id) == [3]
    store.close()
    store = Store.in_folder(tmp_path)  # a restart must not hand out UID 3 again
    store.deliver(MSG + b"again", [Delivery(user.id)])
    assert [m.uid for m in store.list_messages(inbox.id)] == [1, 2, 4]
    assert list(store.mailbox_changes(inbox.id, 0).vanished) == [3]
    store.close()


def test_copy_move_and_flags_keep_modseq_growing(store):
    user = store.add_user("alice@example.org", "pw")
    inbox = store.get_mailbox(user.id, "INBOX")
    archive = store.get_mailbox(user.id, "Archive")
    store.deliver(MSG, [Delivery(user.id)])
    before = store.mailbox_status(inbox.id).highestmodseq
    changed, refused = store.store_flags(inbox.id, [1], "add", ["\\Seen", "$Work"])
    assert changed[0].flags == {"\\Seen", "$Work"} and changed[0].modseq > before and refused == []
    _, refused = store.store_flags(inbox.id, [1], "set", [], unchanged_since=before)
    assert refused == [1]
    assert store.copy(inbox.id, [1], archive.id) == [(1, 1)]
    assert store.move(inbox.id, [1], archive.id) == [(1, 2)]
    assert store.list_messages(inbox.id) == []
    assert [m.flags for m in store.list_messages(archive.id)] == [{"\\Seen", "$Work"}] * 2


def test_mailbox_create_rename_delete(store):
    user = store.add_user("alice@example.org", "pw")
    store.create_mailbox(user.id, "Projects/2026/Q1")
    names = {m.name for m in store.list_mailboxes(user.id)}
    assert {"Projects", "Projects/2026", "Projects/2026/Q1"} <= names
    q1 = store.get_mailbox(user.id, "Projects/2026/Q1")
    store.rename_mailbox(user.id, "Projects", "Work")
    assert store.get_mailbox(user.id, "Work/2026/Q1").uidvalidity == q1.uidvalidity
    with pytest.raises(StoreError):
        store.delete_mailbox(user.id, "INBOX")
    store.delete_mailbox(user.id, "Work/2026/Q1")
    assert store.get_mailbox(user.id, "Work/2026/Q1") is None
    store.create_mailbox(user.id, "Work/2026/Q1")
    assert store.get_mailbox(user.id, "Work/2026/Q1").uidvalidity != q1.uidvalidity


def test_events_arrive_after_commit_for_the_right_user(store):
    alice = store.add_user("alice@example.org", "pw")
    bob = store.add_user("bob@example.org", "pw")
    with store.subscribe(alice.id) as sub:
        store.deliver(MSG, [Delivery(bob.id)])
        store.deliver(MSG, [Delivery(alice.id)])
        event = sub.get(timeout=2)
        assert event.kind == "exists" and event.user_id == alice.id and event.uids == (1,)
        # the message is readable by the time the event arrives
        assert len(store.list_messages(event.mailbox_id)) == 1
        assert sub.get(timeout=0.2) is None


def test_a_subscriber_is_never_woken_by_events_it_does_not_want(store):
    from appliance.store import Overflowed, QueueChanged
    user = store.add_user("alice@example.org", "pw")
    woken = []
    with store.subscribe(wants=lambda event: isinstance(event, QueueChanged)) as sub:
        sub.notify = lambda: woken.append(1)
        store.deliver(MSG, [Delivery(user.id)])  # a mailbox event only
        assert woken == [] and sub.get(timeout=0.2) is None
        [queued] = store.deliver(MSG, [], [QueueEntry("a@example.org", "x@elsewhere.net")]).queue_ids
        event = sub.get(timeout=2)
        assert event.kind == "queued" and event.ids == (queued,) and woken == [1]
        store.bus.overflow_all()  # missed changes concern every subscriber
        assert isinstance(sub.get(timeout=2), Overflowed)


def test_delivery_and_queue_in_one_transaction(store):
    alice = store.add_user("alice@example.org", "pw")
    result = store.deliver(MSG, [Delivery(alice.id)], [QueueEntry("alice@example.org", "x@remote.net")])
    assert len(result.queue_ids) == 1
    row = store.queue_entry(result.queue_ids[0])
    assert row.domain == "remote.net" and row.state == "queued"
    assert store.counts()["blobs"] == 1


def test_concurrent_writers_and_readers_share_commits(store):
    user = store.add_user("alice@example.org", "pw")
    inbox = store.get_mailbox(user.id, "INBOX")
    errors = []
    commits_before = store.db.commits

    def writer(n):
        try:
            for i in range(40):
                store.deliver(b"Subject: %d-%d\r\n\r\nbody\r\n" % (n, i), [Delivery(user.id)])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader():
        try:
            for _ in range(100):
                uids = [m.uid for m in store.list_messages(inbox.id)]
                assert uids == sorted(uids) and len(set(uids)) == len(uids)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)] + \
              [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [m.uid for m in store.list_messages(inbox.id)] == list(range(1, 641))
    assert store.db.commits - commits_before < 640  # group commit: fewer fsyncs than messages
    assert store.integrity_check() == "ok"


def test_failed_job_does_not_undo_its_neighbours(store):
    user = store.add_user("alice@example.org", "pw")
    inbox = store.get_mailbox(user.id, "INBOX")
    results = []

    def good():
        results.append(store.deliver(MSG, [Delivery(user.id)]))

    def bad():
        with pytest.raises(NotFound):
            store.append(user.id, 99999, MSG)

    threads = [threading.Thread(target=f) for f in (good, bad, good, bad, good)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.list_messages(inbox.id)) == 3


def test_search_is_exact_before_and_after_the_index_catches_up(store):
    user = store.add_user("alice@example.org", "pw")
    inbox = store.get_mailbox(user.id, "INBOX")
    store.deliver(b"Subject: Quarterly Report\r\n\r\nNumbers for the board.\r\n", [Delivery(user.id)])
    store.deliver(b"Subject: lunch\r\n\r\nPizza at noon?\r\n", [Delivery(user.id)])
    # the index may or may not have caught up yet: the answer is the same
    assert store.search_text(inbox.id, "REPORT") == {1}
    assert store.search_text(inbox.id, "pizza", "body") == {2}
    assert store.search_text(inbox.id, "pizza", "headers") == set()
    assert store.search_index.wait_caught_up()
    assert store.search_index.indexed_upto >= 2
    assert store.search_text(inbox.id, "REPORT") == {1}
    assert store.search_text(inbox.id, "at") == {2}  # shorter than a trigram
    assert store.search_text(inbox.id, "quarterly report") == {1}
    report_blob = store.list_messages(inbox.id)[0].blob_id
    assert store.search_index.matching_blobs("report", "text") == {report_blob}
    store.delete_messages(inbox.id, [1])
    assert store.search_text(inbox.id, "report") == set()
    assert store.search_index.wait_caught_up()
    assert store.search_index.matching_blobs("report", "text") == set()  # its row left the index too


def test_search_needles_are_literal_and_case_insensitive_beyond_ascii(store):
    user = store.add_user("alice@example.org", "pw")
    inbox = store.get_mailbox(user.id, "INBOX")
    store.deliver("Subject: Menu\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                  "CAFÉ CRÈME 100% [draft] a*b q?c under_score\r\n".encode(), [Delivery(user.id)])
    store.deliver(b"Subject: other\r\n\r\ncafe 1000 xdraftx aXXb qxc underXscore\r\n", [Delivery(user.id)])
    needles = {"café crème": {1}, "100%": {1}, "[draft]": {1}, "a*b": {1}, "q?c": {1}, "under_score": {1},
               "draft": {1, 2}, "é": {1}, "*": {1}, "": {1, 2}}
    for caught_up in (False, True):
        if caught_up:
            assert store.search_index.wait_caught_up()
        for needle, uids in needles.items():
            assert store.search_text(inbox.id, needle) == uids, (needle, caught_up)
            assert store.search_text(inbox.id, needle.upper()) == uids, (needle.upper(), caught_up)


def _store_with_one_indexed_message(tmp_path):
    """A closed store in ``tmp_path`` whose user (returned) has one indexed message."""
    store = Store.in_folder(tmp_path)
    store.add_domain("example.org")
    user = store.add_user("alice@example.org", "pw")
    store.deliver(b"Subject: findme\r\n\r\nneedle in a haystack\r\n", [Delivery(user.id)])
    assert store.search_index.wait_caught_up()
    store.close()
    return user


def _reopened_store_finds_it_before_and_after_reindexing(tmp_path, user, needle: str) -> None:
    """Open the store again: its index starts empty, and the one message is found all along."""
    store = Store.in_folder(tmp_path)
    inbox = store.get_mailbox(user.id, "INBOX")
    assert store.search_index.indexed_upto == 0
    assert store.search_text(inbox.id, needle) == {1}
    assert store.search_index.wait_caught_up() and store.search_index.indexed_upto == 1
    assert store.search_text(inbox.id, needle) == {1}
    store.close()


def test_a_search_index_of_an_older_format_is_rebuilt(tmp_path):
    user = _store_with_one_indexed_message(tmp_path)
    # Format 1: a phrase index of the text as written, and no format in meta.
    index = sqlite3.connect(next(tmp_path.glob("*-search.sqlite")))
    index.execute("DROP TABLE search")
    index.execute("CREATE VIRTUAL TABLE search USING fts5(headers, body, tokenize='trigram')")
    index.execute("INSERT INTO search(rowid, headers, body) VALUES (1, 'Subject: findme', 'needle in a haystack')")
    index.execute("DELETE FROM meta WHERE key = 'format'")
    index.commit()
    index.close()
    _reopened_store_finds_it_before_and_after_reindexing(tmp_path, user, "HAYSTACK")


def test_search_index_is_rebuilt_when_lost(tmp_path):
    user = _store_with_one_indexed_message(tmp_path)
    for f in tmp_path.glob("*-search.sqlite*"):
        f.unlink()
    _reopened_store_finds_it_before_and_after_reindexing(tmp_path, user, "haystack")


def test_a_store_of_the_previous_version_loses_its_stored_body_text_and_still_searches(tmp_path):
    user = _store_with_one_indexed_message(tmp_path)
    # As version 9 wrote it: the analysis carried the body text.
    conn = sqlite3.connect(tmp_path / "kotakpos.sqlite")
    conn.execute("UPDATE parsed SET info = json_set(info, '$.v', 1, '$.search_text', 'needle in a haystack')")
    conn.execute("DROP TABLE changes")  # came with version 11
    _undo_v14_sieve_scripts(conn)
    conn.execute("PRAGMA user_version = 9")
    conn.commit()
    conn.close()
    for f in tmp_path.glob("*-search.sqlite*"):
        f.unlink()
    store = Store.in_folder(tmp_path)
    assert list((tmp_path / "backups").glob("kotakpos-v9-*.sqlite"))
    with store.db.reader() as c:
        info = json.loads(c.execute("SELECT info FROM parsed").fetchone()[0])
    assert info["v"] == 2 and "search_text" not in info
    inbox = store.get_mailbox(user.id, "INBOX")
    assert store.search_text(inbox.id, "haystack", "body") == {1}  # read from the blob
    assert store.search_index.wait_caught_up()
    assert store.search_text(inbox.id, "haystack", "body") == {1}  # from the index
    store.close()


def _undo_v14_sieve_scripts(conn) -> None:
    """Give a store the Sieve tables of version 13: one script per user, no account rules."""
    conn.execute("DROP TABLE sieve_account_rules")
    conn.execute("DROP TABLE sieve_scripts")
    conn.execute("CREATE TABLE sieve_scripts (user_id INTEGER PRIMARY KEY, script TEXT NOT NULL, updated REAL NOT NULL)")


def test_a_store_of_version_13_keeps_each_script_as_the_active_one(tmp_path):
    store = Store.in_folder(tmp_path)
    store.add_domain("example.org")
    alice = store.add_user("alice@example.org", "pw")
    bob = store.add_user("bob@example.org", "pw")
    store.close()
    conn = sqlite3.connect(tmp_path / "kotakpos.sqlite")
    _undo_v14_sieve_scripts(conn)
    conn.execute("INSERT INTO sieve_scripts VALUES (?, 'discard;', 0)", (alice.id,))
    conn.execute("PRAGMA user_version = 13")
    conn.commit()
    conn.close()
    store = Store.in_folder(tmp_path)
    try:
        [script] = store.list_sieve_scripts(alice.id)
        assert (script.name, script.active, script.size) == ("rules", True, len("discard;"))
        assert store.delivery_scripts(alice.id) == ("", "discard;")
        assert store.list_sieve_scripts(bob.id) == []
    finally:
        store.close()


def test_sieve_scripts_several_per_user_one_active(store):
    user = store.add_user("carol@example.org", "pw")
    store.put_sieve_script(user.id, "a", "keep;", max_scripts=2)
    store.put_sieve_script(user.id, "b", "discard;", max_scripts=2)
    with pytest.raises(QuotaExceeded):
        store.put_sieve_script(user.id, "c", "keep;", max_scripts=2)
    store.put_sieve_script(user.id, "b", "stop;", max_scripts=2)  # replacing is not a new script
    store.activate_sieve_script(user.id, "a")
    store.activate_sieve_script(user.id, "b")
    assert [(s.name, s.active) for s in store.list_sieve_scripts(user.id)] == [("a", False), ("b", True)]
    assert store.get_sieve(user.id) == "stop;"
    with pytest.raises(ScriptActive):
        store.delete_sieve_script(user.id, "b")
    with pytest.raises(AlreadyExists):
        store.rename_sieve_script(user.id, "b", "a")
    store.rename_sieve_script(user.id, "b", "Ü b")
    assert store.get_sieve(user.id) == "stop;"  # still active under its new name
    with pytest.raises(NotFound):
        store.activate_sieve_script(user.id, "b")
    store.activate_sieve_script(user.id, None)
    assert store.get_sieve(user.id) == "" and store.get_sieve_script(user.id, "Ü b") == "stop;"
    store.delete_sieve_script(user.id, "Ü b")
    with pytest.raises(NotFound):
        store.get_sieve_script(user.id, "Ü b")
    # the admin's set_sieve writes the active script, or makes "rules" active
    store.set_sieve(user.id, "keep;")
    assert [(s.name, s.active) for s in store.list_sieve_scripts(user.id)] == [("a", False), ("rules", True)]
    store.set_account_rules(user.id, "discard;")
    assert store.delivery_scripts(user.id) == ("discard;", "keep;")
    store.delete_user("carol@example.org")
    newcomer = store.add_user("dave@example.org", "pw")
    assert store.delivery_scripts(newcomer.id) == ("", "")


def _queue_behind_a_busy_writer(store, calls):
    """Run ``calls`` in threads while the writer is held inside one job, so that their
    writes all land in one batch; return (results, errors) in the order of ``calls``."""
    busy, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=store.db.write, args=(lambda tx: (busy.set(), release.wait(10)),))
    holder.start()
    assert busy.wait(10)
    results, errors = [None] * len(calls), [None] * len(calls)

    def run(i):
        try:
            results[i] = calls[i]()
        except Exception as e:
            errors[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for _ in range(1000):
        if store.db._jobs.qsize() == len(calls):
            break
        time.sleep(0.01)
    commits_before = store.db.commits
    release.set()
    for t in threads + [holder]:
        t.join()
    assert store.db.commits - commits_before == 2  # the busy job's own, then one for all of them
    return results, errors


def test_deliveries_sharing_a_commit_are_written_as_one_group(store):
    alice = store.add_user("alice@example.org", "pw")
    bob = store.add_user("bob@example.org", "pw")
    inbox = store.get_mailbox(alice.id, "INBOX")
    sent = store.get_mailbox(alice.id, "Sent")
    calls = [
        lambda: store.deliver(MSG, [Delivery(alice.id)]),
        lambda: store.deliver(MSG, [Delivery(alice.id, "Sent", ("\\Seen",)), Delivery(bob.id)]),  # same bytes
        lambda: store.deliver(MSG + b"2", [Delivery(alice.id, "No such folder")], [QueueEntry("a@example.org", "x@y.net")]),
    ]
    results, errors = _queue_behind_a_busy_writer(store, calls)
    assert errors == [None, None, None]
    # UIDs and modseqs as if written one after the other; unknown folders fall back to INBOX
    assert sorted(uid for r in results for (mb, uid) in r.uids.values() if mb == inbox.id) == [1, 2]
    assert results[1].uids == {alice.id: (sent.id, 1), bob.id: (store.get_mailbox(bob.id, "INBOX").id, 1)}
    assert len(results[2].queue_ids) == 1
    assert [(m.uid, m.flags) for m in store.list_messages(sent.id)] == [(1, frozenset({"\\Seen"}))]
    assert store.get_mailbox(alice.id, "INBOX").uidnext == 3
    assert store.counts()["blobs"] == 2  # identical bytes once, even within one group
    with store.db.reader() as conn:
        refcounts = sorted(r[0] for r in conn.execute("SELECT refcount FROM blobs"))
    assert refcounts == [2, 3]
    rows = store.list_messages(inbox.id)
    assert store.get_parsed([r.blob_id for r in rows]).keys() == {r.blob_id for r in rows}
    assert store.integrity_check() == "ok"


def test_a_failing_delivery_in_a_group_fails_alone(store):
    alice = store.add_user("alice@example.org", "pw")
    inbox = store.get_mailbox(alice.id, "INBOX")
    calls = [lambda n=n: store.deliver(MSG + b"%d" % n, [Delivery(alice.id)]) for n in range(3)]
    calls.insert(1, lambda: store.deliver(MSG + b"lost", [Delivery(987654)]))  # no such user: no INBOX
    results, errors = _queue_behind_a_busy_writer(store, calls)
    assert isinstance(errors[1], NotFound) and results[1] is None
    assert [e for i, e in enumerate(errors) if i != 1] == [None, None, None]
    assert [m.uid for m in store.list_messages(inbox.id)] == [1, 2, 3]
    assert store.counts()["blobs"] == 3


def test_a_delivery_may_create_its_folder_in_the_same_transaction(store):
    user = store.add_user("alice@example.org", "pw")
    store.deliver(MSG, [Delivery(user.id, "Bills/2026", create=True), Delivery(user.id, "Nowhere")])
    store.deliver_filtered([Notice(MSG, (Delivery(user.id, "Receipts", create=True),))])
    names = {m.name: store.mailbox_status(m.id).messages for m in store.list_mailboxes(user.id)}
    assert names["Bills"] == 0 and names["Bills/2026"] == 1 and names["Receipts"] == 1
    assert "Nowhere" not in names and names["INBOX"] == 1  # without create: INBOX, as before


class TwoProcesses(NamedTuple):
    here: Store
    there: Store
    user: Any
    inbox: Any


@pytest.fixture
def two_processes(tmp_path):
    """Two Store objects on one file stand for two processes (each has its own connections
    and writer), with bob@example.org made through the first."""
    here, there = Store.in_folder(tmp_path), Store.in_folder(tmp_path)
    try:
        here.add_domain("example.org")
        user = here.add_user("bob@example.org", "pw")
        yield TwoProcesses(here, there, user, here.get_mailbox(user.id, "INBOX"))
    finally:
        here.close()
        there.close()


def test_another_process_commits_reach_this_ones_subscribers_and_caches(two_processes):
    """Two Store objects on one file stand for two processes (each has its own connections)."""
    here, there, user, inbox = two_processes
    assert here.mailbox_snapshot(inbox.id).uids == []  # kept until a change is heard
    with here.subscribe(user.id) as sub:
        there.append(user.id, inbox.id, b"Subject: one\r\n\r\nhi\r\n")
        here.catch_up()
        assert [e.kind for e in sub.drain()] == ["exists"]
        assert here.mailbox_snapshot(inbox.id).uids == [1]
        # found inside this process's own next commit, without a catch_up
        there.append(user.id, inbox.id, b"Subject: two\r\n\r\nhi\r\n")
        here.append(user.id, inbox.id, b"Subject: three\r\n\r\nhi\r\n")
        assert [e.uids for e in sub.drain()] == [(2,), (3,)]
    assert here.resolve("bob@example.org").users[0].quota == 0
    there.set_quota("bob@example.org", 1000)
    assert here.resolve("bob@example.org").users[0].quota == 0  # kept until a change is heard
    here.catch_up()
    assert here.resolve("bob@example.org").users[0].quota == 1000


def test_catch_up_if_behind_hears_another_process_at_once_and_only_when_it_wrote(two_processes, monkeypatch):
    here, there, user, inbox = two_processes
    catch_ups = []
    catch_up = here.db.catch_up
    monkeypatch.setattr(here.db, "catch_up", lambda: (catch_ups.append(1), catch_up()))
    with here.subscribe(user.id) as sub:
        here.catch_up_if_behind()
        here.append(user.id, inbox.id, b"Subject: own\r\n\r\nhi\r\n")
        here.catch_up_if_behind()
        assert catch_ups == []  # nothing another process wrote: one read, no catch-up
        assert [e.uids for e in sub.drain()] == [(1,)]
        there.append(user.id, inbox.id, b"Subject: other\r\n\r\nhi\r\n")
        here.catch_up_if_behind()
        assert catch_ups == [1]
        assert [e.uids for e in sub.drain()] == [(2,)]  # published before it returned
        here.catch_up_if_behind()
        assert catch_ups == [1]


def test_the_journal_head_is_shared_through_the_lock_file(tmp_path, monkeypatch):
    """Another process's commit shows in the lock file's head at once; a store opened on a
    lock file an older version left empty starts from 0 and is not sent to catch up."""
    # The writer's safety check would hear the other process by itself once a second: on a
    # busy box the child's start can take that long, and then nothing would be left to test.
    monkeypatch.setattr("appliance.store.db.CHECK_SECONDS", 3600.0)
    (tmp_path / "kotakpos.sqlite-lock").write_bytes(b"")
    here = Store.in_folder(tmp_path)
    try:
        here.add_domain("example.org")
        user = here.add_user("bob@example.org", "pw")
        inbox = here.get_mailbox(user.id, "INBOX")
        subprocess.run([sys.executable, "-c", (
            "import sys; from pathlib import Path; from appliance.store import Store\n"
            "s = Store.in_folder(Path(sys.argv[1])); s.append(int(sys.argv[2]), int(sys.argv[3]), "
            "b'Subject: x\\r\\n\\r\\nhi\\r\\n'); s.close()"),
            str(tmp_path), str(user.id), str(inbox.id)], check=True, timeout=60)
        head = int.from_bytes((tmp_path / "kotakpos.sqlite-lock").read_bytes()[:8], "little")
        assert head > here.db.heard
        with here.subscribe(user.id) as sub:
            here.catch_up_if_behind()
            assert [e.uids for e in sub.drain()] == [(1,)]
        assert here.db.heard == head
    finally:
        here.close()


def test_own_commits_never_send_a_session_to_catch_up(tmp_path, monkeypatch):
    """Between its COMMIT and marking the row heard, the writer's own journal row is already
    in the file; a session looking then must not wait a commit cycle for nobody's change."""
    store = Store.in_folder(tmp_path)
    try:
        store.add_domain("example.org")
        user = store.add_user("bob@example.org", "pw")
        inbox = store.get_mailbox(user.id, "INBOX")
        catch_ups = []
        monkeypatch.setattr(store.db, "catch_up", lambda: catch_ups.append(1))

        def append_many():
            for n in range(100):
                store.append(user.id, inbox.id, b"Subject: %d\r\n\r\nhi\r\n" % n)

        writers = [threading.Thread(target=append_many) for _ in range(4)]
        for thread in writers:
            thread.start()
        while any(thread.is_alive() for thread in writers):
            store.catch_up_if_behind()
            time.sleep(0)  # the check takes no lock and does no I/O: let the writers run
        for thread in writers:
            thread.join()
        assert catch_ups == []
    finally:
        store.close()


def test_a_writer_waiting_for_another_process_commits_what_queued_meanwhile_at_once(two_processes):
    """Two Store objects on one file stand for two server processes: while one writes, the
    other's writes wait on the lock file and then go out together in one commit."""
    here, there, user, _ = two_processes
    busy, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=there.db.write, args=(lambda tx: (busy.set(), release.wait(10)),))
    holder.start()
    assert busy.wait(10)
    commits_before = here.db.commits
    threads = [threading.Thread(target=here.deliver, args=(MSG + b"%d" % n, [Delivery(user.id)]))
               for n in range(5)]

    def waiting(started) -> bool:  # each caller waits for its commit
        frames = sys._current_frames()
        return all(t.ident in frames and frames[t.ident].f_code.co_name == "_wait" for t in started)

    threads[0].start()
    for _ in range(1000):  # the writer has taken the first job and waits for the lock
        if waiting(threads[:1]) and here.db._jobs.qsize() == 0:
            break
        time.sleep(0.01)
    for t in threads[1:]:
        t.start()
    for _ in range(1000):
        if waiting(threads):
            break
        time.sleep(0.01)
    assert all(t.is_alive() for t in threads)  # nothing is acknowledged while the other writes
    release.set()
    for t in threads + [holder]:
        t.join(10)
    assert here.db.commits - commits_before == 1
    inbox = here.get_mailbox(user.id, "INBOX")
    assert [m.uid for m in here.list_messages(inbox.id)] == [1, 2, 3, 4, 5]
    assert here.integrity_check() == "ok"


def test_a_process_that_missed_pruned_changes_rereads_everything(two_processes, monkeypatch):
    from appliance.store import Overflowed, journal
    here, there, user, inbox = two_processes
    assert here.mailbox_snapshot(inbox.id).uids == []
    monkeypatch.setattr(journal, "KEEP_SECONDS", -1.0)
    monkeypatch.setattr(journal, "PRUNE_EVERY", 1)
    with here.subscribe(user.id) as sub:
        for n in range(3):
            there.append(user.id, inbox.id, b"Subject: %d\r\n\r\nhi\r\n" % n)
        here.catch_up()
        assert any(isinstance(e, Overflowed) for e in sub.drain())
    assert here.mailbox_snapshot(inbox.id).uids == [1, 2, 3]


def test_every_change_event_crosses_the_journal_unchanged():
    """An event type the journal cannot carry would never reach another process's listeners."""
    import dataclasses
    import inspect

    from appliance.store import events, journal
    kinds = [cls for _, cls in inspect.getmembers(events, inspect.isclass)
             if dataclasses.is_dataclass(cls) and cls.__module__ == events.__name__ and cls is not events.Overflowed]
    assert len(kinds) >= 5
    for cls in kinds:
        values = [("x" if f.type in ("str",) else 7 if f.type in ("int",) else (1, 2)) for f in dataclasses.fields(cls)]
        event = cls(*values)
        assert journal.decode(journal.encode([event])) == [event], cls.__name__


def test_no_part_of_the_store_hides_another_parts_method():
    """Store is assembled from mixins: two defining one name would silently leave one unused."""
    seen: dict[str, str] = {}
    for mixin in Store.__mro__[1:]:
        if mixin is object:
            continue
        for name in vars(mixin):
            if not name.startswith("__"):
                assert name not in seen, f"{mixin.__name__}.{name} is hidden by {seen[name]}.{name}"
                seen[name] = mixin.__name__


def test_a_delivery_is_taken_over_only_when_its_owner_process_is_gone(tmp_path):
    store = Store(tmp_path / "k.sqlite")
    try:
        store.add_domain("example.org")
        alice = store.add_user("alice@example.org", "pw")
        ids = store.deliver(MSG, [Delivery(alice.id)], [QueueEntry("alice@example.org", "x@remote.net"),
                                                        QueueEntry("alice@example.org", "y@remote.net")]).queue_ids
        assert [r.id for r in store.claim_queue(ids[:1])] == [ids[0]]  # this live process delivers it
        # Another process claims the second row and dies without recording an outcome.
        subprocess.run([sys.executable, "-c", "import sys; from appliance.store import Store;"
                        " s = Store(sys.argv[1]); assert s.claim_queue([int(sys.argv[2])]); s.close()",
                        str(tmp_path / "k.sqlite"), str(ids[1])], check=True, timeout=60)
        assert store.queue_entry(ids[1]).state == "delivering"
        assert store.requeue_interrupted() == 1
        assert [store.queue_entry(i).state for i in ids] == ["delivering", "queued"]
        assert store.requeue_interrupted() == 0
    finally:
        store.close()
