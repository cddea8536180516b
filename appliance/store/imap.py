"""What IMAP reads: the snapshot SELECT starts from, what changed since a modseq (read
once however many sessions ask), and the stored forms FETCH sends.

One delivery to a mailbox that a hundred IMAP clients watch wakes all of them at the
same moment, and each needs the same answer; phones and desktops select the same INBOX
again and again while it does not change. The first to ask reads the answer; the others
wait for that read and share it. A commit that touches the mailbox forgets its answers
before anyone hears of the commit, so nobody is handed an answer older than the news
that woke it.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol, Sequence, Sized

from appliance.store.messages import _ROW_COLUMNS, _rows, parse_flags
from appliance.store.models import MailboxChanges, MailboxSnapshot, MessageRow


SNAPSHOT = -1  # the key of a mailbox's SELECT snapshot among its answers (modseqs are positive)


class ChangeCache:
    """Answers per mailbox (its snapshot, what changed since a modseq), dropped when it changes;
    what a derived answer (a SORT order, THREAD's threads) came from is kept and updated."""

    def __init__(self, max_rows: int = 200_000):
        self.max_rows = max_rows  # message rows held in all answers, about 100 bytes each
        self._rows_held = 0
        self._lock = threading.Lock()
        self._answers: dict[int, dict[object, object]] = {}  # mailbox -> key (a modseq, SNAPSHOT, a tuple) -> answer
        self._generation: dict[int, int] = {}    # bumped by forget(): a read begun before it is stale
        self._epoch = 0                           # bumped by forget_all(): likewise for every mailbox
        self._readers: dict[int, threading.Lock] = {}  # one read at a time per mailbox
        self._recent_claimed: dict[int, int] = {}  # mailbox -> every UID up to this one is no longer \Recent
        # blob -> its THREAD keys (sent, subject, reply, message id, references): a blob never
        # changes and its id is never reused, so these stay true; emptied past max_rows
        self.thread_keys: dict[int, tuple] = {}
        # mailbox -> key -> what an answer was derived from (``Derived``), with the messages
        # that came and went since; kept across forget() so that the next answer is an update
        self._bases: dict[int, dict[object, _Base]] = {}
        self._base_rows = 0  # messages the kept bases cover, held to max_rows as answers are

    def get(self, mailbox_id: int, key, read: Callable, shareable: bool = True, update: Callable | None = None):
        """The answer under ``key`` for this mailbox, read by ``read()`` if nobody has it.

        ``shareable`` False: the caller reads inside an older snapshot, so its answer may
        predate a forget() it would be filed under; it is read alone and not kept.

        ``update``: the answer is derived (``Derived``): ``read()`` returns one, and
        ``update(derived, added, removed)`` brings the one kept from before the mailbox
        changed up to date from the UIDs that came and went since (the caller skips UIDs
        it already has or never had: its reads may see a commit before its forget()).
        It returns False when it cannot, and ``read()`` starts afresh.
        """
        if not shareable:
            return read().answer() if update is not None else read()
        with self._lock:
            answers = self._answers.get(mailbox_id)
            if answers is not None and key in answers:
                return answers[key]
            gate = self._readers.setdefault(mailbox_id, threading.Lock())
        with gate:
            with self._lock:
                answers = self._answers.get(mailbox_id)
                if answers is not None and key in answers:
                    return answers[key]  # someone read it while we waited
                generation = (self._epoch, self._generation.get(mailbox_id, 0))
            derived = None
            if update is not None:
                derived = self._updated(mailbox_id, key, update)
                if derived is None:
                    derived = read()
                answer = derived.answer()
            else:
                answer = read()
            rows = _weight(answer)
            with self._lock:
                if (self._epoch, self._generation.get(mailbox_id, 0)) == generation:
                    if self._rows_held + rows > self.max_rows:
                        self._answers.clear()
                        self._rows_held = 0
                    self._answers.setdefault(mailbox_id, {})[key] = answer
                    self._rows_held += rows
                    if derived is not None:
                        # what changes from now on is logged against it; changes made while
                        # it was derived are not, and it is not kept (generation moved)
                        if self._base_rows + rows > self.max_rows:
                            self._bases.clear()
                            self._base_rows = 0
                        self._bases.setdefault(mailbox_id, {})[key] = _Base(derived, rows)
                        self._base_rows += rows
            return answer

    def _updated(self, mailbox_id: int, key, update: Callable):
        """The kept ``Derived`` under ``key`` brought up to date, or None (derive afresh)."""
        with self._lock:
            base = self._bases.get(mailbox_id, {}).pop(key, None)
            if base is None:
                return None
            self._base_rows -= base.rows
        removed = frozenset(base.removed)
        added = tuple(uid for uid in base.added if uid not in removed)
        if not update(base.derived, added, removed):
            return None
        return base.derived

    def forget(self, events) -> None:
        """Drop what the mailboxes in these committed MailboxChanged events had."""
        with self._lock:
            for event in events:
                mailbox_id = event.mailbox_id
                self._generation[mailbox_id] = self._generation.get(mailbox_id, 0) + 1
                for answer in self._answers.pop(mailbox_id, {}).values():
                    self._rows_held -= _weight(answer)
                if event.kind in ("created", "deleted"):
                    self._recent_claimed.pop(mailbox_id, None)  # SQLite may give a new mailbox a freed id
                bases = self._bases.get(mailbox_id)
                if not bases or event.kind in ("flags", "renamed"):
                    continue  # derived answers hang on which messages there are, not on their flags
                known = event.kind in ("exists", "expunge") and event.uids
                for key, base in list(bases.items()):
                    if known:
                        (base.added if event.kind == "exists" else base.removed).extend(event.uids)
                    if not known or len(base.added) + len(base.removed) > MAX_CHANGES_LOGGED:
                        # what changed is not known message by message, or deriving afresh is as quick
                        del bases[key]
                        self._base_rows -= base.rows

    def forget_all(self) -> None:
        """Drop every answer (another process's changes were missed)."""
        with self._lock:
            self._epoch += 1
            self._answers.clear()
            self._bases.clear()
            self._base_rows = 0
            self._rows_held = 0

    def start_recent_claim(self, mailbox_id: int, uid: int) -> bool:
        """True for the one caller whose claim must cover ``uid``: no claim begun before it did."""
        with self._lock:
            if self._recent_claimed.get(mailbox_id, 0) >= uid:
                return False
            self._recent_claimed[mailbox_id] = uid
            return True


MAX_CHANGES_LOGGED = 2000  # messages come and gone since a derived answer; past it, it is derived afresh


class Derived(Protocol):
    """Something kept to answer a question about a mailbox (a SORT order, a THREAD index),
    which an update can bring up to date when messages come and go (``ChangeCache.get``).
    The derived object itself is the cache's alone; what ``answer()`` returns is shared."""

    def answer(self) -> Sized: ...


class _Base:
    """A kept ``Derived`` and the UIDs that came (``added``) and went (``removed``) since."""

    __slots__ = ("derived", "rows", "added", "removed")

    def __init__(self, derived: Derived, rows: int) -> None:
        self.derived = derived
        self.rows = rows  # its weight in ChangeCache._base_rows
        self.added: list[int] = []
        self.removed: list[int] = []


def _weight(answer) -> int:
    """Roughly how many rows an answer holds (None, a mailbox gone, holds nothing)."""
    if answer is None:
        return 1
    if isinstance(answer, MailboxSnapshot):
        return 1 + len(answer.uids)
    if isinstance(answer, MailboxChanges):
        return 1 + len(answer.changed) + len(answer.vanished)
    return 1 + len(answer)  # a derived answer (mailbox_answer) is as long as the messages it covers


class SortedOrder:
    """A mailbox's messages in one SORT order (``ImapMixin.sorted_uids``), kept up to date.

    Rows are (one value per sort key..., uid) as SQLite's ORDER BY put them. Messages that
    come later go in by bisection under the same comparison, so the order stays the one a
    full ORDER BY gives: text compares as SQLite's BINARY collation does (UTF-8 bytes
    order like code points, Python's order), numbers by value, each key ascending or
    reversed, ties by UID ascending.
    """

    def __init__(self, reverse: tuple[bool, ...], rows: list[tuple]) -> None:
        self._reverse = (*reverse, False)  # the UID, last, breaks ties ascending
        self._rows = rows
        self._uids = {row[-1] for row in rows}
        self._answer = tuple(self._uids_in_order())

    def _uids_in_order(self):
        return (row[-1] for row in self._rows)

    def answer(self) -> tuple[int, ...]:
        return self._answer

    def __contains__(self, uid: int) -> bool:
        return uid in self._uids

    def remove(self, uids: frozenset[int]) -> None:
        gone = self._uids.intersection(uids)
        if gone:
            self._rows = [row for row in self._rows if row[-1] not in gone]
            self._uids -= gone
            self._answer = tuple(self._uids_in_order())

    def insert(self, rows: list[tuple]) -> None:
        for row in rows:
            if row[-1] in self._uids:
                continue
            low, high = 0, len(self._rows)
            while low < high:
                middle = (low + high) // 2
                if self._precedes(row, self._rows[middle]):
                    high = middle
                else:
                    low = middle + 1
            self._rows.insert(low, row)
            self._uids.add(row[-1])
        if rows:
            self._answer = tuple(self._uids_in_order())

    def _precedes(self, a: tuple, b: tuple) -> bool:
        for x, y, reverse in zip(a, b, self._reverse):
            if x != y:
                return x > y if reverse else x < y
        return False


class ImapMixin:
    def mailbox_snapshot(self, mailbox_id: int) -> MailboxSnapshot | None:
        """Every message's UID and flags, in UID order: what SELECT starts from (the caller's own
        copy), with the mailbox's modseq and UIDNEXT read in the same moment. None when it is gone."""
        shared = self.changes.get(mailbox_id, SNAPSHOT, lambda: self._read_snapshot(mailbox_id), not self.db.pinned)
        if shared is None:
            return None
        return MailboxSnapshot(list(shared.uids), dict(shared.flags), shared.highest_modseq, shared.uidnext)

    def _read_snapshot(self, mailbox_id: int) -> MailboxSnapshot | None:
        with self.db.reader() as conn:
            mailbox = conn.execute("SELECT highestmodseq, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            if mailbox is None:
                return None
            cursor = conn.cursor()
            cursor.row_factory = None
            rows = cursor.execute("SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? ORDER BY uid",
                                  (mailbox_id,)).fetchall()
        highest_modseq, uidnext = mailbox[0], mailbox[1]
        if not rows:
            return MailboxSnapshot([], {}, highest_modseq, uidnext)
        uids, flag_texts, modseqs = zip(*rows)
        return MailboxSnapshot(list(uids), dict(zip(uids, map(parse_flags, flag_texts))),
                               max(highest_modseq, *modseqs), uidnext)

    def mailbox_changes(self, mailbox_id: int, since: int) -> MailboxChanges | None:
        """RFC 7162's view of a mailbox after modseq ``since``: None when the mailbox is gone."""
        return self.changes.get(mailbox_id, since, lambda: self._read_changes(mailbox_id, since), not self.db.pinned)

    def read_snapshot(self):
        """A ``with`` block in which every read of this thread sees the same moment.

        IMAP FETCH reads its rows, then their parsed forms and bodies: a message expunged
        by another session meanwhile is still there for it (RFC 2180 §4.1.1). Answers of
        ``changes`` read inside one are the caller's alone (``ChangeCache.get``).
        """
        return self.db.snapshot()

    def _read_changes(self, mailbox_id: int, since: int) -> MailboxChanges | None:
        with self.db.reader() as conn:  # one snapshot: the horizon and the rows agree
            row = conn.execute("SELECT highestmodseq FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            if row is None:
                return None
            vanished = tuple(uid for uid, in conn.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", (mailbox_id, since)))
            changed = tuple(_rows(conn, f"SELECT {_ROW_COLUMNS} FROM messages WHERE mailbox_id = ? AND modseq > ?"
                                        " ORDER BY uid", (mailbox_id, since)))
            return MailboxChanges(row[0], vanished, changed)

    def claim_recent_upto(self, mailbox_id: int, highest_uid: int, before_write: Callable | None = None) -> set[int]:
        """``claim_recent`` for a session that knows the mailbox up to ``highest_uid``.

        The hundred idlers told of one new message would each make a write to learn that
        the first of them took its \\Recent; once a claim covering a UID has begun, later
        sessions skip the write, even while that claim still waits for the writer. (A
        claim takes every \\Recent message up to its UID, and it runs after the commit
        that made its session know ``highest_uid``; UIDs only grow, so nothing at or below
        it can be \\Recent again.) ``before_write`` runs only when the claim
        must write: IDLE flushes its news first then, not otherwise.
        """
        if not self.changes.start_recent_claim(mailbox_id, highest_uid):
            return set()
        # A claim of this process covers the UID (so a shared one does too), else ask the
        # runtime table every worker process shares: a session in any process skips when a
        # claim anywhere covers its UID. The store's claim is one atomic write, so each
        # message's \Recent still goes to exactly one session, in any process.
        if not self.runtime.start_recent_claim(mailbox_id, highest_uid):
            return set()
        if before_write is not None:
            before_write()
        return self.claim_recent(mailbox_id, highest_uid)

    def messages_with_forms(self, mailbox_id: int) -> tuple[list[MessageRow], dict[int, tuple[bytes, bytes, bytes]]]:
        """Every message in UID order, and each blob's stored (ENVELOPE, BODY, BODYSTRUCTURE).

        One pass for a FETCH of a whole big mailbox (``1:* (ENVELOPE)``), where reading the
        rows and then looking the forms up blob by blob would walk the index twice.
        """
        rows, forms = [], {}
        make_row = tuple.__new__  # MessageRow(...) runs a Python-level __new__: a tenth of this loop
        with self.db.reader() as conn:
            cursor = conn.cursor()
            cursor.row_factory = None
            for uid, flags, size, date, modseq, blob_id, envelope, body, bodystructure in cursor.execute(
                    "SELECT m.uid, m.flags, m.size, m.internaldate, m.modseq, m.blob_id,"
                    " p.envelope, p.body, p.bodystructure"
                    " FROM messages m LEFT JOIN parsed p ON p.blob_id = m.blob_id"
                    " WHERE m.mailbox_id = ? ORDER BY m.uid", (mailbox_id,)):
                rows.append(make_row(MessageRow, (uid, parse_flags(flags), size, date, modseq, blob_id)))
                forms[blob_id] = (envelope, body, bodystructure)
        return rows, forms

    def told_expunges(self, session_id: int, mailbox_id: int, modseq: int) -> None:
        """IMAP session ``session_id`` has ``mailbox_id`` selected and was told of every expunge
        up to ``modseq`` (SELECT: its snapshot's). Messages others expunge meanwhile are kept
        for it (RFC 2180 §4.1); those every session was told of are let go."""
        if modseq and not self.keeps_expunged(mailbox_id):
            # the horizon only lets kept messages go: a session's older one, left as it was,
            # keeps more for a while, never less (and saves a write per session per expunge)
            return
        self.runtime.select(session_id, mailbox_id, modseq)
        self.release_expunged(mailbox_id)

    def left_mailbox(self, session_id: int, mailbox_id: int) -> None:
        """IMAP session ``session_id`` no longer has ``mailbox_id`` selected (``told_expunges``)."""
        self.runtime.select(session_id, None)
        self.release_expunged(mailbox_id)

    # -- SORT and THREAD (RFC 5256), from the keys kept at arrival (mime.sortkeys) --------

    _SORT_COLUMNS = {  # RFC 5256 §3 sort keys; RFC 5957 §3 DISPLAYFROM/DISPLAYTO
        # text is never NULL here (no sort_keys row reads as an empty key): SortedOrder
        # compares in Python as SQLite did
        "ARRIVAL": "m.internaldate", "SIZE": "m.size", "DATE": "coalesce(k.sent, m.internaldate)",
        "SUBJECT": "coalesce(k.subject, '')", "FROM": "coalesce(k.from_addr, '')",
        "TO": "coalesce(k.to_addr, '')", "CC": "coalesce(k.cc_addr, '')",
        "DISPLAYFROM": "coalesce(k.display_from, '')", "DISPLAYTO": "coalesce(k.display_to, '')",
    }

    def mailbox_answer(self, mailbox_id: int, key: tuple, compute: Callable, update: Callable | None = None):
        """What ``compute()`` derives from this mailbox's messages (a THREAD tree, say), shared by
        every session until the mailbox changes. ``key`` names the question; the answer must
        not be changed by those who get it, and its len() is the messages it covers.

        With ``update``, ``compute()`` returns a ``Derived`` whose ``answer()`` is shared, and
        ``update(derived, added, removed)`` brings it up to date when messages came and went
        (``ChangeCache.get``).
        """
        return self.changes.get(mailbox_id, key, compute, update=update)

    def sorted_uids(self, mailbox_id: int, order: Sequence[tuple[str, bool]]) -> tuple[int, ...]:
        """Every UID of the mailbox in SORT order: by each (key, reverse) of ``order`` in turn,
        ties in UID order, which is sequence-number order (RFC 5256 §3). Shared by every
        session until the mailbox changes (a client re-sorts a big folder at each look), and
        then updated: new messages are put in their places, expunged ones taken out.

        Raises KeyError for a key that is not one of RFC 5256's or RFC 5957's.
        """
        order = tuple(order)
        columns = [self._SORT_COLUMNS[key] for key, _ in order]
        join = " LEFT JOIN sort_keys k ON k.blob_id = m.blob_id" if any("k." in c for c in columns) else ""
        select = f"SELECT {', '.join(columns)}, m.uid FROM messages m{join} WHERE m.mailbox_id = ?"

        def read() -> SortedOrder:
            terms = [column + (" DESC" if reverse else "") for column, (_, reverse) in zip(columns, order)]
            return SortedOrder(tuple(reverse for _, reverse in order),
                               self._sort_rows(f"{select} ORDER BY {', '.join(terms + ['m.uid'])}", (mailbox_id,)))

        def update(sorted_order: SortedOrder, added: tuple[int, ...], removed: frozenset[int]) -> bool:
            sorted_order.remove(removed)
            added = [uid for uid in added if uid not in sorted_order]
            for start in range(0, len(added), 500):
                chunk = added[start:start + 500]
                sorted_order.insert(self._sort_rows(f"{select} AND m.uid IN ({','.join('?' * len(chunk))})",
                                                    (mailbox_id, *chunk)))
            return True

        return self.changes.get(mailbox_id, ("SORT", order), read, update=update)

    def _sort_rows(self, sql: str, parameters: tuple) -> list[tuple]:
        with self.db.reader() as conn:
            cursor = conn.cursor()
            cursor.row_factory = None
            return cursor.execute(sql, parameters).fetchall()

    def thread_keys(self, mailbox_id: int, uids: Sequence[int] | None = None
                    ) -> list[tuple[int, float, str, bool, str, tuple[str, ...]]]:
        """(uid, sent date, base subject, reply, message id, references) of every message in
        UID order, or of those of ``uids`` still there: what THREAD needs (RFC 5256 §3). The
        sent date is INTERNALDATE where the message has no readable Date header.

        A client threads a folder again after each new message; the keys of the blobs read
        before are kept (``ChangeCache.thread_keys``), so only the new ones are read.
        """
        known = self.changes.thread_keys
        with self.db.reader() as conn:
            cursor = conn.cursor()
            cursor.row_factory = None
            if uids is None:
                rows = cursor.execute("SELECT uid, blob_id, internaldate FROM messages WHERE mailbox_id = ?"
                                      " ORDER BY uid", (mailbox_id,)).fetchall()
            else:
                rows = []
                for start in range(0, len(uids), 500):
                    chunk = list(uids[start:start + 500])
                    rows += cursor.execute("SELECT uid, blob_id, internaldate FROM messages WHERE mailbox_id = ?"
                                           f" AND uid IN ({','.join('?' * len(chunk))})", (mailbox_id, *chunk))
                rows.sort()
            missing = sorted({blob_id for _, blob_id, _ in rows if blob_id not in known})
            if len(known) + len(missing) > self.changes.max_rows:
                known.clear()
                missing = sorted({blob_id for _, blob_id, _ in rows})
            for start in range(0, len(missing), 500):
                chunk = missing[start:start + 500]
                for blob_id, sent, subject, reply, message_id, refs in cursor.execute(
                        "SELECT blob_id, sent, subject, reply, message_id, refs FROM sort_keys"
                        f" WHERE blob_id IN ({','.join('?' * len(chunk))})", chunk):
                    known[blob_id] = (sent, subject, bool(reply), message_id, tuple(refs.split()))
        empty = (None, "", False, "", ())
        out = []
        for uid, blob_id, internaldate in rows:
            sent, subject, reply, message_id, refs = known.get(blob_id, empty)
            out.append((uid, internaldate if sent is None else sent, subject, reply, message_id, refs))
        return out
