"""The store's SORT and THREAD keys (table sort_keys, migration 11) and its sorted orders."""

import sqlite3

from appliance.store import Delivery, Store


def _message(subject: str, sender: str, message_id: str, references: str = "") -> bytes:
    head = f"From: {sender}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n"
    if references:
        head += f"References: {references}\r\n"
    return (head + "\r\nbody\r\n").encode()


def _store(tmp_path):
    store = Store.in_folder(tmp_path)
    store.add_domain("example.org")
    user = store.add_user("alice@example.org", "pw")
    for raw in (_message("pear", "zoe@x.org", "1"), _message("Re: apple", "amy@x.org", "2", "<1>"),
                _message("fig", "bob@x.org", "3")):
        store.deliver(raw, [Delivery(user.id)])
    return store, user, store.get_mailbox(user.id, "INBOX")


def test_sorted_orders_and_thread_keys(tmp_path):
    store, user, inbox = _store(tmp_path)
    assert store.sorted_uids(inbox.id, [("SUBJECT", False)]) == (2, 3, 1)
    assert store.sorted_uids(inbox.id, [("FROM", True)]) == (1, 3, 2)
    assert store.sorted_uids(inbox.id, [("CC", False), ("SUBJECT", True)]) == (1, 3, 2)
    keys = store.thread_keys(inbox.id)
    assert [(uid, subject, reply, message_id, refs) for uid, _, subject, reply, message_id, refs in keys] == [
        (1, "PEAR", False, "1", ()), (2, "APPLE", True, "2", ("1",)), (3, "FIG", False, "3", ())]
    # a new message changes the mailbox: the shared order is read again
    store.deliver(_message("banana", "cy@x.org", "4"), [Delivery(user.id)])
    assert store.sorted_uids(inbox.id, [("SUBJECT", False)]) == (2, 4, 3, 1)
    # the keys go with the last copy of a message
    store.store_flags(inbox.id, [2], "add", ["\\Deleted"])
    store.expunge(inbox.id)
    with store.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM sort_keys").fetchone()[0] == 3
    store.close()


def test_a_store_of_the_previous_version_gets_its_sort_keys(tmp_path):
    store, user, inbox = _store(tmp_path)
    store.close()
    conn = sqlite3.connect(tmp_path / "kotakpos.sqlite")
    conn.execute("DROP TABLE sort_keys")
    conn.execute("PRAGMA user_version = 12")
    conn.commit()
    conn.close()
    store = Store.in_folder(tmp_path)
    assert list((tmp_path / "backups").glob("kotakpos-v12-*.sqlite"))
    assert store.sorted_uids(inbox.id, [("SUBJECT", False)]) == (2, 3, 1)
    assert [refs for *_, refs in store.thread_keys(inbox.id)] == [(), ("1",), ()]
    store.close()
