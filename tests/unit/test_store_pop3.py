"""The store's POP3 reads: the login snapshot's sizes and flags, and texts read together."""

from appliance.store import Delivery


def test_the_snapshot_counts_the_crlf_pop3_adds_and_knows_what_was_seen(store):
    alice = store.add_user("alice@example.org", "pw")
    raws = [b"Subject: a\r\n\r\nends well\r\n", b"Subject: b\r\n\r\nno line end", b"Subject: c\r\n\r\nlone CR\r"]
    for raw in raws:
        store.deliver(raw, [Delivery(alice.id)])
    inbox = store.get_mailbox(alice.id, "INBOX")
    store.store_flags(inbox.id, [2], "add", ["\\Seen", "\\Answered"])
    sizes = [len(r if r.endswith(b"\r\n") else r + b"\r\n") for r in (raws[0], raws[1], raws[2] + b"\n")]
    assert store.pop3_maildrop(inbox.id) == [(1, sizes[0], False), (2, sizes[1], True), (3, sizes[2], False)]


def test_a_blob_shared_by_two_mailboxes_is_unterminated_until_its_last_copy_goes(store):
    alice, bob = store.add_user("alice@example.org", "pw"), store.add_user("bob@example.org", "pw")
    raw = b"Subject: shared\r\n\r\nno line end"
    store.deliver(raw, [Delivery(alice.id), Delivery(bob.id)])
    a, b = store.get_mailbox(alice.id, "INBOX"), store.get_mailbox(bob.id, "INBOX")
    store.delete_messages(a.id, [1])
    assert store.pop3_maildrop(b.id) == [(1, len(raw) + 2, False)]
    store.delete_messages(b.id, [1])
    assert store.pop3_maildrop(b.id) == []
    with store.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM blobs_unterminated").fetchone()[0] == 0


def test_texts_of_several_messages_in_one_read_leave_out_removed_ones(store):
    alice = store.add_user("alice@example.org", "pw")
    for n in range(1, 6):
        store.deliver(b"Subject: %d\r\n\r\nbody\r\n" % n, [Delivery(alice.id)])
    inbox = store.get_mailbox(alice.id, "INBOX")
    store.delete_messages(inbox.id, [3])
    texts = store.pop3_texts(inbox.id, [2, 3, 4])
    assert sorted(texts) == [2, 4] and texts[4] == b"Subject: 4\r\n\r\nbody\r\n"


def test_texts_read_together_are_each_exactly_their_own_bytes(store):
    # Read in one row and cut apart again: NULs, 8-bit bytes and very different sizes
    # must come back byte for byte, each under its own UID.
    alice = store.add_user("alice@example.org", "pw")
    raws = [b"Subject: nul\r\n\r\na\x00b\r\n", b"Subject: 8bit\r\n\r\n\xff\xfe\xc3(\r\n",
            b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 3000, b"Subject: none\r\n\r\n"]
    for raw in raws:
        store.deliver(raw, [Delivery(alice.id)])
    inbox = store.get_mailbox(alice.id, "INBOX")
    texts = store.pop3_texts(inbox.id, [4, 1, 3, 2])
    rows = store.list_messages(inbox.id)
    assert texts == {row.uid: store.get_raw(row.blob_id) for row in rows}
    assert texts[1] == raws[0] and texts[2] == raws[1]
