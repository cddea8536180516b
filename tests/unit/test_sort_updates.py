"""SORT orders and THREAD trees kept up to date as messages come and go (store.ChangeCache's
derived answers, store.SortedOrder, imap.thread.ReferencesIndex): each must be exactly
what sorting or threading the mailbox from scratch gives."""

import itertools
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.imap.sort import MailboxThreads
from appliance.imap.thread import Message, ReferencesIndex, references, render
from appliance.store import Delivery, Store
from appliance.store.imap import ChangeCache

IDS = [f"m{n}" for n in range(8)]
SUBJECTS = ["", "plan", "Re: plan", "lunch", "Fwd: lunch", "Érable", "apple"]
ORDERS = [(("SUBJECT", False),), (("FROM", False),), (("DATE", False),), (("ARRIVAL", False),),
          (("SIZE", False),), (("SIZE", True), ("SUBJECT", True)), (("DISPLAYFROM", True),),
          (("CC", False), ("DATE", True))]


# -- THREAD REFERENCES, the pure algorithm ------------------------------------------------

thread_messages = st.lists(st.tuples(
    st.sampled_from(["", *IDS]),                          # Message-ID (duplicates and none too)
    st.lists(st.sampled_from(IDS), max_size=3),           # References
    st.sampled_from(["", "plan", "lunch", "apple"]),      # base subject
    st.booleans(),                                        # a reply
    st.integers(0, 5),                                    # sent date (ties too)
), max_size=25)


@given(thread_messages, st.integers(0, 25))
@settings(max_examples=400, deadline=None)
def test_threading_new_messages_in_place_gives_the_full_answer(specs, first):
    messages = [Message(uid, float(sent), subject, reply, message_id, tuple(refs))
                for uid, (message_id, refs, subject, reply, sent) in enumerate(specs, 1)]
    index = ReferencesIndex(messages[:first])
    for n, message in enumerate(messages[first:], first + 1):
        if not index.add(message):
            index = ReferencesIndex(messages[:n])  # what the caller does: thread afresh
        assert index.render_by_uid() == render(references(messages[:n]), int)


def test_a_reply_and_a_new_discussion_are_threaded_in_place():
    # the cases new mail mostly is: neither makes the mailbox be threaded again
    base = [Message(1, 1.0, "plan", False, "a", ()), Message(2, 3.0, "plan", True, "b", ("a",)),
            Message(3, 2.0, "lunch", False, "c", ())]
    index = ReferencesIndex(base)
    assert index.render_by_uid() == b"(1 2)(3)"
    assert index.add(Message(4, 2.5, "plan", True, "d", ("a",)))
    assert index.add(Message(5, 0.5, "news", False, "e", ()))
    assert index.render_by_uid() == b"(5)(1 (4)(2))(3)"
    # the latest of a subject is gathered with its threads (RFC 5256 step 6)
    assert index.add(Message(6, 9.0, "lunch", False, "f", ()))
    assert index.add(Message(7, 9.5, "lunch", True, "g", ()))
    assert index.render_by_uid() == b"(5)(1 (4)(2))((3)(6)(7))"
    # one that answers a message nobody has, or comes before others of its subject, cannot be
    assert not index.add(Message(8, 9.0, "plan", True, "h", ("gone",)))
    assert not index.add(Message(8, 0.1, "lunch", True, "h", ()))
    assert index.render_by_uid() == b"(5)(1 (4)(2))((3)(6)(7))"


# -- through the store: random deliveries and expunges ------------------------------------

operations = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(SUBJECTS), st.sampled_from(["zed", "Ann", "bob", ""]),
              st.integers(0, 3), st.integers(0, 200), st.sampled_from(["", *IDS]),
              st.lists(st.sampled_from(IDS), max_size=2)),
    st.tuples(st.just("expunge"), st.lists(st.integers(0, 30), min_size=1, max_size=3)),
), min_size=1, max_size=12)


def _raw(subject, sender, day, size, message_id, refs) -> bytes:
    head = f"Subject: {subject}\r\n"
    if sender:
        head += f"From: {sender} <{sender.lower()}@x.org>\r\n"
    if day:
        head += f"Date: Mon, {day} Mar 2024 10:00:00 +0000\r\n"
    if message_id:
        head += f"Message-ID: <{message_id}>\r\n"
    if refs:
        head += "References: " + " ".join(f"<{r}>" for r in refs) + "\r\n"
    return (head + "\r\n" + "x" * size + "\r\n").encode()


def _threads(store: Store, mailbox_id: int) -> bytes:
    """THREAD REFERENCES of the whole mailbox, as the IMAP session asks the store for it."""
    def messages(uids=None):
        return list(map(Message._make, store.thread_keys(mailbox_id, uids)))
    return store.mailbox_answer(mailbox_id, ("THREAD", "REFERENCES"), lambda: MailboxThreads(messages(), "REFERENCES"),
                                lambda threads, added, removed: threads.update(messages, added, removed)).by_uid


def _answers(store: Store, mailbox_id: int) -> list:
    return [store.sorted_uids(mailbox_id, order) for order in ORDERS] + [_threads(store, mailbox_id)]


def _from_scratch(store: Store, mailbox_id: int) -> list:
    kept = store.changes
    store.changes = ChangeCache()
    try:
        return _answers(store, mailbox_id)
    finally:
        store.changes = kept


@pytest.fixture(scope="module")
def shared_store():
    """One store for every example (each takes a mailbox of its own): a store per example
    would spend the test's time on creating stores."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store.in_folder(folder)
        store.add_domain("example.org")
        user = store.add_user("alice@example.org", "pw")
        yield store, user.id, itertools.count()
        store.close()


@given(ops=operations)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
def test_kept_orders_and_threads_match_a_full_rebuild(shared_store, ops):
    store, user_id, numbers = shared_store
    name = f"box{next(numbers)}"
    box = store.create_mailbox(user_id, name).id
    _answers(store, box)  # kept from here on: every later answer is an update
    for op in ops:
        if op[0] == "add":
            store.deliver(_raw(*op[1:]), [Delivery(user_id, name)])
        else:
            uids = [m.uid for m in store.list_messages(box)]
            doomed = sorted({uids[n % len(uids)] for n in op[1]}) if uids else []
            if doomed:
                store.store_flags(box, doomed, "add", ["\\Deleted"])
                store.expunge(box)
        assert _answers(store, box) == _from_scratch(store, box)


def test_new_mail_is_sorted_in_without_reading_the_mailbox_again(tmp_path):
    store = Store.in_folder(tmp_path)
    store.add_domain("example.org")
    user = store.add_user("alice@example.org", "pw")
    inbox = store.get_mailbox(user.id, "INBOX").id
    for n in range(20):
        store.deliver(_raw(f"subject {n % 7}", "bob", 1 + n % 3, n, f"id{n}", []), [Delivery(user.id)])
    order = (("SUBJECT", False),)
    before = store.sorted_uids(inbox, order)
    rows_read = []
    real = store._sort_rows
    store._sort_rows = lambda sql, parameters: rows_read.append(real(sql, parameters)) or rows_read[-1]
    store.deliver(_raw("subject 0", "amy", 2, 5, "new", []), [Delivery(user.id)])
    after = store.sorted_uids(inbox, order)
    assert [len(rows) for rows in rows_read] == [1]  # only the new message's keys
    subjects = {uid: (uid - 1) % 7 for uid in before} | {21: 0}
    assert after == tuple(sorted(before + (21,), key=lambda uid: (subjects[uid], uid)))
    assert after.index(21) == 3  # after the three older "subject 0" ones
    store.close()
