"""What the store keeps for IMAP: one read per mailbox change, never an answer older than the news."""

import threading
import time

from appliance.store import Delivery
from appliance.store.imap import ChangeCache
from appliance.store.events import MailboxChanged
from appliance.store.models import MailboxChanges


def answer(horizon: int) -> MailboxChanges:
    return MailboxChanges(horizon, (), ())


def test_sessions_asking_the_same_thing_share_one_read():
    cache = ChangeCache()
    reads = []
    first = cache.get(7, 10, lambda: reads.append(1) or answer(11))
    second = cache.get(7, 10, lambda: reads.append(1) or answer(99))
    assert first == second == answer(11)
    assert len(reads) == 1


def test_a_commit_to_the_mailbox_makes_the_next_session_read_again():
    cache = ChangeCache()
    cache.get(7, 10, lambda: answer(11))
    cache.get(8, 10, lambda: answer(50))
    cache.forget([MailboxChanged("exists", 1, 7)])
    assert cache.get(7, 10, lambda: answer(12)) == answer(12)
    assert cache.get(8, 10, lambda: answer(99)) == answer(50)  # another mailbox keeps its answer


def test_a_read_overtaken_by_a_commit_is_not_handed_to_later_sessions():
    cache = ChangeCache()

    def read_then_commit_lands():
        cache.forget([MailboxChanged("exists", 1, 7)])  # a commit to mailbox 7 lands while this read runs
        return answer(11)

    assert cache.get(7, 10, read_then_commit_lands) == answer(11)
    assert cache.get(7, 10, lambda: answer(12)) == answer(12)


def test_a_hundred_idlers_woken_together_cause_one_read():
    cache = ChangeCache()
    reads = []

    def slow_read():
        reads.append(1)
        time.sleep(0.05)
        return answer(11)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(7, 10, slow_read))) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reads) == 1
    assert results == [answer(11)] * 100


MSG = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


def test_recent_goes_to_one_session_and_the_others_skip_the_write(store):
    user = store.add_user("alice@example.org", "pw")
    box = store.create_mailbox(user.id, "Lists")
    first = store.deliver(MSG, [Delivery(user.id, "Lists")]).uids[user.id][1]
    assert store.claim_recent_upto(box.id, first) == {first}
    commits = store.db.commits
    assert store.claim_recent_upto(box.id, first) == set()
    assert store.db.commits == commits  # the second idler did not write
    second = store.deliver(MSG + b"again\r\n", [Delivery(user.id, "Lists")]).uids[user.id][1]
    assert store.claim_recent_upto(box.id, second) == {second}
    # a mailbox made again (SQLite may hand it the old id) starts with nothing claimed
    store.delete_mailbox(user.id, "Lists")
    again = store.create_mailbox(user.id, "Lists")
    uid = store.deliver(MSG, [Delivery(user.id, "Lists")]).uids[user.id][1]
    assert store.claim_recent_upto(again.id, uid) == {uid}


def test_select_snapshots_are_shared_until_the_mailbox_changes(store):
    user = store.add_user("alice@example.org", "pw")
    inbox = store.get_mailbox(user.id, "INBOX")
    first = store.deliver(MSG, [Delivery(user.id)]).uids[user.id][1]
    snapshot = store.mailbox_snapshot(inbox.id)
    assert snapshot.uids == [first] and snapshot.flags == {first: frozenset()}
    snapshot.uids.append(999)  # a session grows its own copy as news arrives
    snapshot.flags[999] = frozenset()
    assert store.mailbox_snapshot(inbox.id).uids == [first]
    store.store_flags(inbox.id, [first], "add", ["\\Seen"])
    second = store.deliver(MSG + b"more\r\n", [Delivery(user.id)]).uids[user.id][1]
    again = store.mailbox_snapshot(inbox.id)
    assert again.uids == [first, second]
    assert again.flags[first] == {"\\Seen"}
    assert again.highest_modseq > snapshot.highest_modseq
    assert again.uidnext == second + 1


def test_a_claim_leaves_recent_messages_above_what_its_session_knows(store):
    user = store.add_user("alice@example.org", "pw")
    inbox = store.get_mailbox(user.id, "INBOX")
    first = store.deliver(MSG, [Delivery(user.id)]).uids[user.id][1]
    second = store.deliver(MSG + b"later\r\n", [Delivery(user.id)]).uids[user.id][1]
    assert store.recent_uids(inbox.id, 1, second) == {first, second}  # looking takes nothing
    assert store.claim_recent_upto(inbox.id, first) == {first}
    assert store.recent_uids(inbox.id, 1, second) == {second}
    assert store.claim_recent_upto(inbox.id, second) == {second}


def test_reads_in_a_snapshot_still_find_a_message_expunged_meanwhile(store):
    user = store.add_user("alice@example.org", "pw")
    inbox = store.get_mailbox(user.id, "INBOX")
    uid = store.deliver(MSG, [Delivery(user.id)]).uids[user.id][1]
    with store.read_snapshot():
        (row,) = store.messages_by_uid(inbox.id, [uid])
        # another session's expunge commits (the writer is another thread)
        store.store_flags(inbox.id, [uid], "add", ["\\Deleted"])
        assert store.expunge(inbox.id) == [uid]
        assert store.get_raws([row.blob_id]) == {row.blob_id: MSG}
        assert store.get_imap_forms([row.blob_id])[row.blob_id][0].startswith(b"(")
        assert store.mailbox_changes(inbox.id, 0).vanished == ()  # read alone in the snapshot, not shared
    assert store.get_raws([row.blob_id]) == {}
    assert store.mailbox_changes(inbox.id, 0).vanished == (uid,)
