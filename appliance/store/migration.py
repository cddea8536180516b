"""Moving mail in and out: bulk append, duplicate detection, IMAP import progress, snapshots.

``appliance.migrate`` (import/export, IMAP import, restore) reaches the store only
through these methods. Resuming an interrupted import relies on content: a mailbox's
messages are counted by the SHA-256 of their stored bytes (the same hash that
deduplicates blobs), so a message already present is not stored again — and a source
that really holds two identical messages still gets both.
"""

from __future__ import annotations

import collections
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from appliance import mime
from appliance.store.db import create_private
from appliance.store.errors import NotFound, QuotaExceeded
from appliance.store.messages import _chunks, parse_flags, prepare


def content_hash(raw: bytes) -> bytes:
    """The SHA-256 a message would be stored under (after CRLF normalisation)."""
    return hashlib.sha256(mime.normalize_crlf(raw)).digest()


@dataclass(frozen=True)
class Incoming:
    """One message to add with ``append_many``."""

    raw: bytes
    flags: frozenset[str]
    internaldate: float
    binary: bool = False  # kept byte for byte (an IMAP binary literal, see messages.prepare)


class MigrationMixin:
    def mailbox_hashes(self, mailbox_id: int) -> collections.Counter:
        """How many messages of each content (SHA-256) a mailbox holds."""
        with self.db.reader() as conn:
            rows = conn.execute("SELECT b.sha256 FROM messages m JOIN blobs b ON b.id = m.blob_id"
                                " WHERE m.mailbox_id = ?", (mailbox_id,)).fetchall()
        return collections.Counter(bytes(r[0]) for r in rows)

    def append_many(self, user_id: int, mailbox_id: int, messages: Iterable[Incoming]) -> list[int]:
        """Add several messages in one transaction (one fsync); returns their UIDs once durable.

        Like ``append`` (RFC 3501 §6.3.11) for bulk imports. Raises QuotaExceeded when the
        batch would pass the user's quota (nothing of it is stored), NotFound for a gone mailbox.
        """
        prepared = [(prepare(m.raw, binary=m.binary), m.flags, m.internaldate) for m in messages]
        user = self.get_user_by_id(user_id)
        size = sum(len(p.raw) for p, _, _ in prepared)
        if user and user.quota and self.usage(user_id) + size > user.quota:
            raise QuotaExceeded("quota exceeded")

        def job(tx):
            if not tx.execute("SELECT 1 FROM mailboxes WHERE id = ? AND user_id = ?", (mailbox_id, user_id)).fetchone():
                raise NotFound("no such mailbox")
            uids = []
            for p, flags, when in prepared:
                blob_id = self._put_blob(tx, p, 1)
                uids.append(self._insert_message(tx, user_id, mailbox_id, blob_id, len(p.raw), flags, when))
            return uids

        return self.db.write(job)

    def imap_import_progress(self, user_id: int, source: str) -> dict[str, tuple[int, int]]:
        """Remote folder -> (UIDVALIDITY, highest UID copied) of earlier imports from ``source``."""
        with self.db.reader() as conn:
            rows = conn.execute("SELECT folder, uidvalidity, last_uid FROM imap_imports"
                                " WHERE user_id = ? AND source = ?", (user_id, source)).fetchall()
        return {r["folder"]: (r["uidvalidity"], r["last_uid"]) for r in rows}

    def set_imap_import_progress(self, user_id: int, source: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        """Remember that every message of a remote folder up to ``last_uid`` is copied."""
        self.db.write(lambda tx: tx.execute(
            "INSERT OR REPLACE INTO imap_imports(user_id, source, folder, uidvalidity, last_uid) VALUES (?,?,?,?,?)",
            (user_id, source, folder, uidvalidity, last_uid)))

    def snapshot(self, target: Path | str) -> dict[str, int]:
        """Copy the database to ``target`` (SQLite's online backup API) and return its counts.

        Counts and copy come from one read transaction, so they describe exactly the
        copy: ``Snapshot.counts()`` of a sound file equals them. Writers go on meanwhile.
        """
        target = Path(target)
        partial = target.with_name(target.name + ".partial")
        partial.unlink(missing_ok=True)
        with self.db.reader() as conn:
            counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                      for table in ("users", "mailboxes", "messages", "blobs")}
            dest = sqlite3.connect(str(create_private(partial)))
            try:
                conn.backup(dest)
                dest.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                dest.close()
        partial.replace(target)
        return counts


@dataclass(frozen=True)
class SnapshotMessage:
    raw: bytes
    flags: frozenset[str]
    internaldate: float


class Snapshot:
    """A store snapshot file (``Store.backup``), opened read-only.

    Used to verify backups and to restore one user's mail or one folder from them.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.is_file():
            raise NotFound(f"{self.path} does not exist")
        self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        self.conn.row_factory = sqlite3.Row

    def integrity_check(self) -> str:
        """"ok", or SQLite's description of the damage (also for a file that is no database)."""
        try:
            return self.conn.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as e:
            return str(e)

    def counts(self) -> dict[str, int]:
        """Users, mailboxes, messages and blobs in the snapshot; raises sqlite3.DatabaseError if unreadable."""
        one = lambda sql: self.conn.execute(sql).fetchone()[0]  # noqa: E731
        return {"users": one("SELECT count(*) FROM users"), "mailboxes": one("SELECT count(*) FROM mailboxes"),
                "messages": one("SELECT count(*) FROM messages"), "blobs": one("SELECT count(*) FROM blobs")}

    def orphans(self) -> int:
        """Messages whose bytes are missing: a snapshot with any cannot restore them."""
        return self.conn.execute("SELECT count(*) FROM messages m LEFT JOIN blobs b ON b.id = m.blob_id"
                                 " WHERE b.id IS NULL").fetchone()[0]

    def mailboxes(self, address: str) -> list[tuple[int, str, str | None]]:
        """(id, name, special-use) of a user's mailboxes in the snapshot; NotFound for an unknown user."""
        user = self.conn.execute("SELECT id FROM users WHERE address = ? COLLATE NOCASE", (address,)).fetchone()
        if user is None:
            raise NotFound(f"the snapshot has no user {address}")
        rows = self.conn.execute("SELECT id, name, special_use FROM mailboxes WHERE user_id = ? ORDER BY name",
                                 (user["id"],)).fetchall()
        return [(r["id"], r["name"], r["special_use"]) for r in rows]

    def message_count(self, mailbox_id: int) -> int:
        return self.conn.execute("SELECT count(*) FROM messages WHERE mailbox_id = ?", (mailbox_id,)).fetchone()[0]

    def messages(self, mailbox_id: int) -> Iterator[SnapshotMessage]:
        """A mailbox's messages in UID order, a few at a time (a mailbox may not fit in memory)."""
        uids = [r[0] for r in self.conn.execute("SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid",
                                                (mailbox_id,))]
        for chunk in _chunks(uids, 50):
            rows = self.conn.execute(
                "SELECT m.flags, m.internaldate, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id"
                f" WHERE m.mailbox_id = ? AND m.uid IN ({','.join('?' * len(chunk))}) ORDER BY m.uid",
                (mailbox_id, *chunk)).fetchall()
            for r in rows:
                yield SnapshotMessage(bytes(r["data"]), parse_flags(r["flags"]), r["internaldate"])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
