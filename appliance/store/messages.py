"""Messages: durable delivery, append, flags, expunge, copy, move, search.

A message's bytes live once in ``blobs`` (by SHA-256, reference-counted); each mailbox
that holds it has a ``messages`` row with its own UID, flags and modseq. The MIME
analysis (``appliance.mime.analyze``) and its JSON form are made once, in the caller's
thread, before the write job, so the writer thread only inserts rows. Deliveries go to
the writer as items of one group (``Database.write_grouped``): the deliveries that share
a commit also share their INSERT statements, a few per commit rather than per message.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from appliance import mime
from appliance.mime.sortkeys import header_sort_keys
from appliance.store.errors import NotFound, QuotaExceeded
from appliance.store import search
from appliance.store.migrations import SORT_KEY_MARKS, sort_key_row
from appliance.store.events import BlobReleased, MailboxChanged, QueueChanged
from appliance.store.models import Delivery, MessageRow, Parsed, QueueEntry

SEEN, DELETED = "\\Seen", "\\Deleted"


@dataclass(frozen=True)
class DeliveryResult:
    uids: dict[int, tuple[int, int]]   # user_id -> (mailbox_id, uid)
    queue_ids: tuple[int, ...]


@dataclass(frozen=True)
class _Prepared:
    """A message analysed outside the writer: its bytes, hash and parsed forms."""

    raw: bytes
    sha256: bytes
    info: "mime.MessageInfo"
    info_json: str  # info.to_json(), what parsed.info stores
    sort_row: tuple  # its sort_keys row without the blob id (IMAP SORT and THREAD)


def prepare(raw: bytes, known: tuple[bytes, "mime.MessageInfo", list] | None = None,
            binary: bool = False) -> _Prepared:
    """Hash and analyse a message for storage.

    ``known`` is (a message with CRLF line endings, its analysis, its top-level
    ``header_fields``) of which ``raw`` may be a copy with trace or filter headers prepended
    (what the MDA hands over): then only those headers are checked for bare CRs and LFs,
    and the analysis is shifted, not redone, so a message is parsed once on its way in (at
    100 KiB, the three counts of ``normalize_crlf`` cost about as much as hashing it).
    ``binary``: the message came as an IMAP binary literal (RFC 3516 §4.3) and is kept byte
    for byte, bare CRs and LFs of its binary parts included.
    """
    info = fields = None
    if known is not None and not binary and raw.endswith(known[0]):
        known_raw, known_info, known_fields = known
        added = raw[:len(raw) - len(known_raw)]
        checked = mime.normalize_crlf(added)
        if checked is not added:
            raw = checked + known_raw
        added_fields = mime.header_fields(checked)
        info = mime.prepend_header(known_info, checked, added_fields)
        # a first line that continues a field would belong to the last added field
        if info is not None and known_raw[:1] not in (b" ", b"\t"):
            fields = added_fields + known_fields
    elif not binary:
        raw = mime.normalize_crlf(raw)
    if fields is None:
        fields = mime.header_fields(raw[:mime.header_end(raw)])
    info = info or mime.analyze(raw, crlf=not binary, fields=fields)
    return _Prepared(raw, hashlib.sha256(raw).digest(), info, info.to_json(),
                     sort_key_row(0, header_sort_keys(fields, info.date))[1:])


def format_flags(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


@functools.lru_cache(maxsize=4096)
def parse_flags(text: str) -> frozenset[str]:
    # a mailbox holds few distinct flag sets: parse each once (SELECT reads them all)
    return frozenset(text.split()) if text else frozenset()


_ROW_COLUMNS = "uid, flags, size, internaldate, modseq, blob_id"


def _rows(conn, sql: str, params) -> list[MessageRow]:
    """MessageRows from a query selecting _ROW_COLUMNS, read as plain tuples (fast for 10,000 rows)."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return [MessageRow(uid, parse_flags(flags), size, date, modseq, blob)
            for uid, flags, size, date, modseq, blob in cursor.execute(sql, params)]


class MessagesMixin:
    # -- writing -----------------------------------------------------------------------

    def deliver(self, raw: bytes, deliveries: Sequence[Delivery], queue: Sequence[QueueEntry] = (),
                internaldate: float | None = None, known=None) -> DeliveryResult:
        """Store one message for local recipients and queue it for remote ones, atomically.

        Returns once the transaction is committed and fsynced: the caller may then
        acknowledge the message (SMTP 250). One blob serves every recipient. ``known``:
        see ``prepare``.
        """
        prepared = prepare(raw, known)
        when = internaldate or time.time()
        return self.db.write_grouped(self._deliver_group, (prepared, tuple(deliveries), tuple(queue), when))

    def _deliver_group(self, tx, items: list) -> list[DeliveryResult]:
        """Write the deliveries ``(prepared, deliveries, queue, when)`` that share a commit.

        Row for row what ``_write_copy`` writes for each in turn (same UIDs, modseqs and
        events, in the same order), but one multi-row statement per table for all of them.
        """
        blob_ids = self._put_blobs(tx, [(p, len(ds) + len(qs)) for p, ds, qs, _ in items])
        for d in {d for _, ds, _, _ in items for d in ds if d.create}:
            self._make_missing_mailbox(tx, d.user_id, d.mailbox)
        targets = self._target_mailboxes(tx, {(d.user_id, d.mailbox) for _, ds, _, _ in items for d in ds})
        rows, results = [], []
        for (prepared, deliveries, queue, when), blob_id in zip(items, blob_ids):
            uids = {}
            for d in deliveries:
                mailbox = targets[(d.user_id, d.mailbox)]  # [id, uidnext, highestmodseq]
                uid = mailbox[1]
                mailbox[1] += 1
                mailbox[2] += 1
                rows.append((mailbox[0], uid, blob_id, format_flags(d.flags), when, len(prepared.raw), mailbox[2]))
                tx.emit(MailboxChanged("exists", d.user_id, mailbox[0], (uid,), mailbox[2]))
                uids[d.user_id] = (mailbox[0], uid)
            queue_ids = tuple(self._enqueue(tx, blob_id, entry, when) for entry in queue)
            if queue_ids:
                tx.emit(QueueChanged("queued", queue_ids))
            results.append(DeliveryResult(uids, queue_ids))
        if rows:
            _insert_rows(tx, "messages(mailbox_id, uid, blob_id, flags, internaldate, size, modseq, recent)", rows,
                         "(?,?,?,?,?,?,?,1)")
            changed = {id(m): m for m in targets.values()}.values()
            tx.executemany("UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?",
                           [(m[1], m[2], m[0]) for m in changed])
        return results

    def append(self, user_id: int, mailbox_id: int, raw: bytes, flags: Iterable[str] = (),
               internaldate: float | None = None, binary: bool = False) -> tuple[int, int]:
        """RFC 3501 §6.3.11: add a message to a mailbox; returns (uidvalidity, uid) once durable.

        ``binary``: see ``prepare``. Raises QuotaExceeded when the user's quota would be
        passed, NotFound for a gone mailbox.
        """
        prepared = prepare(raw, binary=binary)
        when = internaldate or time.time()
        user = self.get_user_by_id(user_id)
        if user and user.quota and self.usage(user_id) + len(prepared.raw) > user.quota:
            raise QuotaExceeded("quota exceeded")

        def job(tx):
            mb = tx.execute("SELECT uidvalidity FROM mailboxes WHERE id = ? AND user_id = ?",
                            (mailbox_id, user_id)).fetchone()
            if not mb:
                raise NotFound("no such mailbox")
            blob_id = self._put_blob(tx, prepared, 1)
            uid = self._insert_message(tx, user_id, mailbox_id, blob_id, len(prepared.raw), flags, when)
            return mb["uidvalidity"], uid

        return self.db.write(job)

    def store_flags(self, mailbox_id: int, uids: Iterable[int], mode: str, flags: Iterable[str],
                    unchanged_since: int | None = None) -> tuple[list[MessageRow], list[int]]:
        """RFC 3501 §6.4.6 / RFC 7162 §3.1.3: change flags; mode is "set", "add" or "remove".

        Returns (rows whose flags changed, with their new modseq; UIDs refused because their
        modseq is above ``unchanged_since``).
        """
        wanted = set(flags)
        uid_list = sorted(set(uids))

        def job(tx):
            mb = tx.execute("SELECT user_id, highestmodseq FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            if not mb:
                raise NotFound("no such mailbox")
            changed, refused = [], []
            modseq = mb["highestmodseq"]
            for chunk in _chunks(uid_list, 500):
                rows = tx.execute(f"SELECT * FROM messages WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))})",
                                  (mailbox_id, *chunk)).fetchall()
                for r in rows:
                    if unchanged_since is not None and r["modseq"] > unchanged_since:
                        refused.append(r["uid"])
                        continue
                    old = parse_flags(r["flags"])
                    new = wanted if mode == "set" else (old | wanted if mode == "add" else old - wanted)
                    if new == old:
                        continue
                    modseq += 1
                    tx.execute("UPDATE messages SET flags = ?, modseq = ? WHERE id = ?", (format_flags(new), modseq, r["id"]))
                    changed.append(MessageRow(r["uid"], frozenset(new), r["size"], r["internaldate"], modseq, r["blob_id"]))
            if changed:
                tx.execute("UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", (modseq, mailbox_id))
                tx.emit(MailboxChanged("flags", mb["user_id"], mailbox_id, tuple(r.uid for r in changed), modseq))
            return changed, refused

        return self.db.write(job)

    def expunge(self, mailbox_id: int, uids: Iterable[int] | None = None, session_id: int | None = None) -> list[int]:
        """RFC 3501 §6.4.3 (and UID EXPUNGE, RFC 4315): remove \\Deleted messages; returns their UIDs.

        ``session_id``: the IMAP session expunging, which tells of it itself; for the other
        sessions with the mailbox selected the messages are kept (``release_expunged``).
        """
        only = None if uids is None else set(uids)

        def job(tx):
            rows = tx.execute("SELECT uid, flags FROM messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,)).fetchall()
            doomed = [r["uid"] for r in rows if DELETED in parse_flags(r["flags"]) and (only is None or r["uid"] in only)]
            return self._remove(tx, mailbox_id, doomed, session_id)

        return self.db.write(job)

    def delete_messages(self, mailbox_id: int, uids: Iterable[int]) -> list[int]:
        """Remove these messages whatever their flags (POP3 QUIT); returns the UIDs removed."""
        doomed = sorted(set(uids))
        return self.db.write(lambda tx: self._remove(tx, mailbox_id, doomed))

    def copy(self, src_mailbox_id: int, uids: Iterable[int], dst_mailbox_id: int) -> list[tuple[int, int]]:
        """RFC 3501 §6.4.7 / RFC 4315 COPYUID: returns (source UID, new UID) pairs once durable."""
        return self.db.write(lambda tx: self._copy(tx, src_mailbox_id, sorted(set(uids)), dst_mailbox_id))

    def move(self, src_mailbox_id: int, uids: Iterable[int], dst_mailbox_id: int,
             session_id: int | None = None) -> list[tuple[int, int]]:
        """RFC 6851: copy then expunge from the source, in one transaction (``session_id`` as for expunge)."""
        uid_list = sorted(set(uids))

        def job(tx):
            pairs = self._copy(tx, src_mailbox_id, uid_list, dst_mailbox_id)
            self._remove(tx, src_mailbox_id, [src for src, _ in pairs], session_id)
            return pairs

        return self.db.write(job)

    def claim_recent(self, mailbox_id: int, highest_uid: int) -> set[int]:
        """The UIDs up to ``highest_uid`` that are \\Recent for the session claiming now; no
        later session sees them so. Messages above it stay \\Recent for whoever hears of them
        first (RFC 3501 §2.3.2): RECENT never counts a message its session was not told of."""
        def job(tx):
            uids = {r["uid"] for r in tx.execute("SELECT uid FROM messages WHERE mailbox_id = ? AND recent = 1"
                                                 " AND uid <= ?", (mailbox_id, highest_uid))}
            if uids:
                tx.execute("UPDATE messages SET recent = 0 WHERE mailbox_id = ? AND recent = 1 AND uid <= ?",
                           (mailbox_id, highest_uid))
            return uids

        return self.db.write(job)

    def recent_uids(self, mailbox_id: int, lowest_uid: int, highest_uid: int) -> set[int]:
        """The UIDs in this range still \\Recent, claimed by nobody (what EXAMINE shows, RFC 3501 §6.3.2)."""
        with self.db.reader() as conn:
            return {r["uid"] for r in conn.execute("SELECT uid FROM messages WHERE mailbox_id = ? AND recent = 1"
                                                   " AND uid BETWEEN ? AND ?", (mailbox_id, lowest_uid, highest_uid))}

    # -- reading -----------------------------------------------------------------------

    def list_messages(self, mailbox_id: int) -> list[MessageRow]:
        """Every message of a mailbox in UID order."""
        with self.db.reader() as conn:
            return _rows(conn, f"SELECT {_ROW_COLUMNS} FROM messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,))

    def messages_by_uid(self, mailbox_id: int, uids: Iterable[int]) -> list[MessageRow]:
        """These messages of a mailbox, in UID order; UIDs that do not exist are left out.

        For IMAP commands naming a few messages of a big mailbox (FETCH 7, SEARCH narrowed by
        the text index), where list_messages would read every row.
        """
        return self._rows_by_uid("messages", mailbox_id, uids)

    def get_raw(self, blob_id: int) -> bytes:
        with self.db.reader() as conn:
            row = conn.execute("SELECT data FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        if not row:
            raise NotFound("message is gone")
        return row["data"]

    def existing_uids(self, mailbox_id: int, uids: Iterable[int]) -> set[int]:
        """Which of these UIDs are still in the mailbox (POP3 DELE after an IMAP expunge)."""
        found: set[int] = set()
        with self.db.reader() as conn:
            for chunk in _chunks(sorted(set(uids)), 500):
                found.update(r["uid"] for r in conn.execute(
                    f"SELECT uid FROM messages WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))})",
                    (mailbox_id, *chunk)))
        return found

    def get_raws(self, blob_ids: Iterable[int]) -> dict[int, bytes]:
        """The bytes of several blobs in one query (IMAP FETCH of many bodies).

        The caller bounds the batch: every blob asked for is held in memory at once.
        """
        result = {}
        with self.db.reader() as conn:
            for chunk in _chunks(sorted(set(blob_ids)), 500):
                for r in conn.execute(f"SELECT id, data FROM blobs WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                    result[r["id"]] = r["data"]
        return result

    def get_parsed(self, blob_ids: Iterable[int]) -> dict[int, Parsed]:
        """The pre-rendered ENVELOPE/BODY/BODYSTRUCTURE and analysis of each blob."""
        result = {}
        with self.db.reader() as conn:
            for chunk in _chunks(sorted(set(blob_ids)), 500):
                for r in conn.execute(f"SELECT * FROM parsed WHERE blob_id IN ({','.join('?' * len(chunk))})", chunk):
                    result[r["blob_id"]] = Parsed(r["envelope"], r["body"], r["bodystructure"], r["info"])
        return result

    def get_imap_forms(self, blob_ids: Iterable[int]) -> dict[int, tuple[bytes, bytes, bytes]]:
        """(ENVELOPE, BODY, BODYSTRUCTURE) of each blob, without the analysis JSON.

        IMAP FETCH of many messages (``1:* (ENVELOPE)``) needs only these pre-rendered texts.
        """
        result = {}
        with self.db.reader() as conn:
            for chunk in _chunks(sorted(set(blob_ids)), 500):
                for r in conn.execute("SELECT blob_id, envelope, body, bodystructure FROM parsed"
                                      f" WHERE blob_id IN ({','.join('?' * len(chunk))})", chunk):
                    result[r["blob_id"]] = (r["envelope"], r["body"], r["bodystructure"])
        return result

    def get_info(self, blob_id: int) -> "mime.MessageInfo":
        parsed = self.get_parsed([blob_id]).get(blob_id)
        if parsed is None:
            raise NotFound("message is gone")
        return mime.MessageInfo.from_json(parsed.info_json)

    def search_text(self, mailbox_id: int, needle: str, where: str = "text") -> set[int]:
        """UIDs whose text contains ``needle``, case-insensitively (IMAP SEARCH TEXT/BODY/HEADER).

        ``where`` is "text" (headers and body), "body" or "headers". Exact whether or not
        the index has caught up with the newest messages (see ``search.py``).
        """
        upto = self.search_index.indexed_upto
        with self.db.reader() as conn:
            rows = conn.execute("SELECT uid, blob_id FROM messages WHERE mailbox_id = ?", (mailbox_id,)).fetchall()
            pending = sorted({r["blob_id"] for r in rows if r["blob_id"] > upto})
            fresh = set()
            for chunk in _chunks(pending, 500):
                for r in conn.execute("SELECT p.blob_id, p.info, b.data FROM parsed p JOIN blobs b ON b.id = p.blob_id"
                                      f" WHERE p.blob_id IN ({','.join('?' * len(chunk))})", chunk):
                    if search.matches(needle, r["info"], r["data"], where):
                        fresh.add(r["blob_id"])
        indexed = self.search_index.matching_blobs(needle, where) if any(r["blob_id"] <= upto for r in rows) else set()
        return {r["uid"] for r in rows if r["blob_id"] in fresh or (r["blob_id"] <= upto and r["blob_id"] in indexed)}

    # -- shared steps inside a write job ------------------------------------------------

    def _write_copy(self, tx, prepared: _Prepared, deliveries: Sequence[Delivery], queue: Sequence[QueueEntry],
                    when: float) -> tuple[dict[int, tuple[int, int]], list[int]]:
        """One message's blob, its mailbox rows and its queue rows: (uids by user, queue ids)."""
        blob_id = self._put_blob(tx, prepared, len(deliveries) + len(queue))
        uids = {}
        for d in deliveries:
            if d.create:
                self._make_missing_mailbox(tx, d.user_id, d.mailbox)
            mailbox_id = self._target_mailbox(tx, d.user_id, d.mailbox)
            uids[d.user_id] = (mailbox_id, self._insert_message(tx, d.user_id, mailbox_id, blob_id,
                                                                 len(prepared.raw), d.flags, when))
        return uids, [self._enqueue(tx, blob_id, entry, when) for entry in queue]

    def _put_blob(self, tx, prepared: _Prepared, references: int) -> int:
        row = tx.execute("SELECT id FROM blobs WHERE sha256 = ?", (prepared.sha256,)).fetchone()
        if row:
            tx.execute("UPDATE blobs SET refcount = refcount + ? WHERE id = ?", (references, row["id"]))
            return row["id"]
        info = prepared.info
        blob_id = tx.execute("INSERT INTO blobs(sha256, size, refcount, data) VALUES (?,?,?,?)",
                             (prepared.sha256, len(prepared.raw), references, prepared.raw)).lastrowid
        tx.execute("INSERT INTO parsed(blob_id, envelope, body, bodystructure, info) VALUES (?,?,?,?,?)",
                   (blob_id, info.envelope, info.body, info.bodystructure, prepared.info_json))
        tx.execute(f"INSERT INTO sort_keys VALUES ({SORT_KEY_MARKS})", (blob_id, *prepared.sort_row))
        return blob_id

    def _put_blobs(self, tx, entries: list[tuple[_Prepared, int]]) -> list[int]:
        """``_put_blob`` for several (prepared, references) at once: the blob id of each.

        A new blob gets the next id itself (the writer is the only writer, inside its
        transaction), so its parsed row can go in the same statement batch without
        reading ids back. Ids still only grow, as AUTOINCREMENT promises the search index.
        """
        wanted: dict[bytes, list] = {}  # sha256 -> [prepared, references]
        for prepared, references in entries:
            wanted.setdefault(prepared.sha256, [prepared, 0])[1] += references
        ids: dict[bytes, int] = {}
        for chunk in _chunks(list(wanted), 500):
            for blob_id, sha in tx.execute(f"SELECT id, sha256 FROM blobs WHERE sha256 IN ({_marks(len(chunk))})",
                                           chunk):
                ids[sha] = blob_id
        if ids:
            tx.executemany("UPDATE blobs SET refcount = refcount + ? WHERE id = ?",
                           [(wanted[sha][1], blob_id) for sha, blob_id in ids.items()])
        new = [sha for sha in wanted if sha not in ids]
        if new:
            last = tx.execute("SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'blobs'), 0),"
                              " coalesce((SELECT max(id) FROM blobs), 0))").fetchone()[0]
            blobs, parsed, keys = [], [], []
            for blob_id, sha in enumerate(new, last + 1):
                prepared, references = wanted[sha]
                info = prepared.info
                ids[sha] = blob_id
                blobs.append((blob_id, sha, len(prepared.raw), references, prepared.raw))
                parsed.append((blob_id, info.envelope, info.body, info.bodystructure, prepared.info_json))
                keys.append((blob_id, *prepared.sort_row))
            _insert_rows(tx, "blobs(id, sha256, size, refcount, data)", blobs)
            _insert_rows(tx, "parsed(blob_id, envelope, body, bodystructure, info)", parsed)
            _insert_rows(tx, "sort_keys", keys)
        return [ids[prepared.sha256] for prepared, _ in entries]

    def _target_mailboxes(self, tx, wanted: set[tuple[int, str]]) -> dict[tuple[int, str], list]:
        """``_target_mailbox`` for several (user id, name) at once, with each mailbox's counters.

        Returns (user id, name) -> [mailbox id, uidnext, highestmodseq]; the names that
        land in one mailbox share one list, so UIDs taken from it never collide.
        """
        users = sorted({user_id for user_id, _ in wanted})
        names = sorted({name for _, name in wanted} | {"INBOX"})
        found = {}  # (user id, name) -> row; may hold pairs nobody asked for
        for some_users in _chunks(users, 400):
            for some_names in _chunks(names, 400):
                for r in tx.execute("SELECT id, user_id, name, uidnext, highestmodseq FROM mailboxes WHERE user_id"
                                    f" IN ({_marks(len(some_users))}) AND name IN ({_marks(len(some_names))})",
                                    [*some_users, *some_names]):
                    found[(r[1], r[2])] = r
        counters: dict[int, list] = {}
        targets = {}
        for user_id, name in wanted:
            r = found.get((user_id, name)) or found.get((user_id, "INBOX"))
            if r is None:
                raise NotFound("the recipient has no INBOX")
            targets[(user_id, name)] = counters.setdefault(r[0], [r[0], r[3], r[4]])
        return targets

    def kept_messages(self, mailbox_id: int, uids: Iterable[int]) -> list[MessageRow]:
        """Messages of these UIDs expunged but kept for sessions not yet told (RFC 2180 §4.1),
        as they were; their blobs and parsed forms are there too."""
        return self._rows_by_uid("expunged_kept", mailbox_id, uids)

    def _rows_by_uid(self, table: str, mailbox_id: int, uids: Iterable[int]) -> list[MessageRow]:
        out = []
        with self.db.reader() as conn:
            for chunk in _chunks(sorted(set(uids)), 500):
                out += _rows(conn, f"SELECT {_ROW_COLUMNS} FROM {table}"
                                   f" WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))}) ORDER BY uid",
                             (mailbox_id, *chunk))
        return out

    def keeps_expunged(self, mailbox_id: int) -> bool:
        """Whether messages expunged from this mailbox are kept for sessions (``kept_messages``)."""
        with self.db.reader() as conn:
            return conn.execute("SELECT 1 FROM expunged_kept WHERE mailbox_id = ? LIMIT 1",
                                (mailbox_id,)).fetchone() is not None

    def release_expunged(self, mailbox_id: int | None = None) -> None:
        """Let go of the expunged messages kept for IMAP sessions (of one mailbox, or all) that
        every session with their mailbox selected has now been told of; a read when none is."""
        with self.db.reader() as conn:
            sql = "SELECT mailbox_id, min(expunged) FROM expunged_kept"
            rows = conn.execute(sql + (" WHERE mailbox_id = ?" if mailbox_id is not None else "")
                                + " GROUP BY mailbox_id", () if mailbox_id is None else (mailbox_id,)).fetchall()
        due = []
        for kept_in, oldest in rows:
            horizon = self._runtime.told_horizon(kept_in) if self._runtime is not None else None
            if horizon is None or oldest <= horizon:
                due.append((kept_in, horizon))
        if due:
            self.db.write(lambda tx: [self._release_kept(tx, kept_in, horizon) for kept_in, horizon in due])

    def _release_kept(self, tx, mailbox_id: int, horizon: int | None) -> None:
        """Drop the kept messages of a mailbox expunged at or before ``horizon`` (None: all)."""
        released = tx.execute("DELETE FROM expunged_kept WHERE mailbox_id = ? AND expunged <= ? RETURNING blob_id",
                              (mailbox_id, horizon if horizon is not None else 2 ** 62)).fetchall()
        if released:
            self._release_blobs(tx, [r[0] for r in released])

    def _release_blobs(self, tx, blob_ids: Iterable[int]) -> None:
        counts: dict[int, int] = {}
        for b in blob_ids:
            counts[b] = counts.get(b, 0) + 1
        for blob_id, n in counts.items():
            tx.execute("UPDATE blobs SET refcount = refcount - ? WHERE id = ?", (n, blob_id))
            left = tx.execute("SELECT refcount FROM blobs WHERE id = ?", (blob_id,)).fetchone()
            if left and left["refcount"] <= 0:
                tx.emit(BlobReleased(blob_id))
                tx.execute("DELETE FROM parsed WHERE blob_id = ?", (blob_id,))
                tx.execute("DELETE FROM sort_keys WHERE blob_id = ?", (blob_id,))
                tx.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))

    def _target_mailbox(self, tx, user_id: int, name: str) -> int:
        row = tx.execute("SELECT id FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, name)).fetchone()
        if row is None:
            row = tx.execute("SELECT id FROM mailboxes WHERE user_id = ? AND name = 'INBOX'", (user_id,)).fetchone()
        if row is None:
            raise NotFound("the recipient has no INBOX")
        return row["id"]

    def _insert_message(self, tx, user_id: int, mailbox_id: int, blob_id: int, size: int,
                        flags: Iterable[str], internaldate: float) -> int:
        mb = tx.execute("UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
                        " WHERE id = ? RETURNING uidnext - 1 AS uid, highestmodseq", (mailbox_id,)).fetchone()
        tx.execute("INSERT INTO messages(mailbox_id, uid, blob_id, flags, internaldate, size, modseq, recent)"
                   " VALUES (?,?,?,?,?,?,?,1)",
                   (mailbox_id, mb["uid"], blob_id, format_flags(flags), internaldate, size, mb["highestmodseq"]))
        tx.emit(MailboxChanged("exists", user_id, mailbox_id, (mb["uid"],), mb["highestmodseq"]))
        return mb["uid"]

    def _remove(self, tx, mailbox_id: int, uids: list[int], session_id: int | None = None) -> list[int]:
        if not uids:
            return []
        mb = tx.execute("SELECT user_id, highestmodseq FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
        if not mb:
            raise NotFound("no such mailbox")
        modseq = mb["highestmodseq"] + 1
        removed, gone = [], []
        for chunk in _chunks(uids, 500):
            for r in tx.execute(f"DELETE FROM messages WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))})"
                                " RETURNING uid, blob_id, flags, size, internaldate, modseq",
                                (mailbox_id, *chunk)).fetchall():
                removed.append(r["uid"])
                gone.append(tuple(r))
        if not removed:
            return []
        removed.sort()
        tx.executemany("INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?,?,?)",
                       [(mailbox_id, uid, modseq) for uid in removed])
        tx.execute("UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", (modseq, mailbox_id))
        # Only a serving process has the runtime open: only there can IMAP sessions be selected
        horizon = self._runtime.told_horizon(mailbox_id, session_id) if self._runtime is not None else None
        if horizon is None:
            self._release_blobs(tx, [blob_id for _, blob_id, *_ in gone])
        else:
            # RFC 2180 §4.1: other sessions not yet told may still FETCH them
            tx.executemany("INSERT OR REPLACE INTO expunged_kept VALUES (?,?,?,?,?,?,?,?)",
                           [(mailbox_id, *row, modseq) for row in gone])
        if self._runtime is not None:
            # what earlier expunges kept, once every session (this one too) was told of them
            self._release_kept(tx, mailbox_id, self._runtime.told_horizon(mailbox_id))
        tx.emit(MailboxChanged("expunge", mb["user_id"], mailbox_id, tuple(removed), modseq))
        return removed

    def _copy(self, tx, src: int, uids: list[int], dst: int) -> list[tuple[int, int]]:
        src_mb = tx.execute("SELECT user_id FROM mailboxes WHERE id = ?", (src,)).fetchone()
        dst_mb = tx.execute("SELECT user_id FROM mailboxes WHERE id = ?", (dst,)).fetchone()
        if not src_mb or not dst_mb or src_mb["user_id"] != dst_mb["user_id"]:
            raise NotFound("no such mailbox")
        pairs = []
        for chunk in _chunks(uids, 500):
            rows = tx.execute(f"SELECT * FROM messages WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))})"
                              " ORDER BY uid", (src, *chunk)).fetchall()
            for r in rows:
                tx.execute("UPDATE blobs SET refcount = refcount + 1 WHERE id = ?", (r["blob_id"],))
                new_uid = self._insert_message(tx, dst_mb["user_id"], dst, r["blob_id"], r["size"],
                                               parse_flags(r["flags"]), r["internaldate"])
                pairs.append((r["uid"], new_uid))
        return pairs


_ROWS_PER_INSERT = 64  # one statement text per row count up to this: few enough for the statement cache


def _insert_rows(tx, into: str, rows: list[tuple], row_marks: str | None = None) -> None:
    """INSERT INTO ``into`` every row, in multi-row statements of up to _ROWS_PER_INSERT rows."""
    row_marks = row_marks or f"({_marks(len(rows[0]))})"
    for chunk in _chunks(rows, _ROWS_PER_INSERT):
        tx.execute(f"INSERT INTO {into} VALUES {','.join([row_marks] * len(chunk))}", [v for row in chunk for v in row])


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]
