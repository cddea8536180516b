"""The change journal: what each commit changed, so that other processes on the file hear it.

Every process that opens the store publishes change events after its own commits
(``events``). Another process writing to the same file — ``kotakpos import`` or
``restore --user`` beside a running server, or another worker of the server — commits
behind its back, so each commit that has events also writes them, in the same
transaction, as one row of the ``changes`` table. A process learns that others wrote
from SQLite itself: ``PRAGMA data_version`` on its writer connection moves only when
another connection committed. It then reads the rows it has not seen and publishes
their events exactly as it publishes its own, so the IMAP caches forget, idling
clients hear EXISTS, the search indexer looks for new blobs and the TUI updates.

Row ids grow by one per commit that has events (the newest row is never pruned, so
SQLite never hands out an id twice). A process therefore knows what it has seen by one
number, and a row id that jumps past the next one tells the writer, inside its own
transaction, that others committed in between. Rows older than ``KEEP_SECONDS`` go; a
process that fell further behind than that is told to re-read everything (``Overflowed``).
"""

from __future__ import annotations

import json
import sqlite3
import time

from appliance.store.events import AccountsChanged, BlobReleased, MailboxChanged, Overflowed, QuarantineChanged, QueueChanged

# A process reads the journal at least every CHECK_SECONDS (db.py), so a minute of rows
# is plenty; more would only make the table bigger under a delivery burst.
KEEP_SECONDS = 60.0
PRUNE_EVERY = 256  # rows written between two prunes

_KINDS = {cls.__name__: cls for cls in (MailboxChanged, QueueChanged, QuarantineChanged, AccountsChanged, BlobReleased)}


def encode(events: list) -> str:
    """One row's text: each event as [type name, field values...] (tuples become JSON lists)."""
    # vars(): a plain dataclass keeps its fields there, in order (dataclasses.fields() costs 4x more)
    return json.dumps([[type(e).__name__, *vars(e).values()] for e in events], separators=(",", ":"))


def decode(text: str) -> list:
    events = []
    for name, *values in json.loads(text):
        cls = _KINDS.get(name)
        if cls is not None:  # a newer Kotakpos's event this one does not know: nothing here listens
            events.append(cls(*(tuple(v) if isinstance(v, list) else v for v in values)))
    return events


def newest(conn: sqlite3.Connection) -> int:
    """The id of the newest row: what a process must have heard to know every commit so far."""
    return conn.execute("SELECT coalesce(max(id), 0) FROM changes").fetchone()[0]


class Journal:
    """One process's side of the journal. Used only by the writer thread (``db.Database``)."""

    def __init__(self, conn: sqlite3.Connection):
        self.seen = newest(conn)
        self.data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        self._written = 0

    def record(self, conn: sqlite3.Connection, events: list) -> tuple[int, list]:
        """Write this transaction's events; return the new row's id and the events other
        processes committed since the last row this one saw (to publish after the commit)."""
        row_id = conn.execute("INSERT INTO changes(created, events) VALUES (?, ?)",
                              (time.time(), encode(events))).lastrowid
        others = self._read(conn, row_id) if row_id != self.seen + 1 else []
        self._written += 1
        if self._written % PRUNE_EVERY == 0:
            conn.execute("DELETE FROM changes WHERE id < ? AND created < ?", (row_id, time.time() - KEEP_SECONDS))
        return row_id, others

    def committed(self, row_id: int) -> None:
        self.seen = row_id

    def others(self, conn: sqlite3.Connection) -> list:
        """What other processes committed since this one last looked ([] when nobody did)."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self.data_version:
            return []
        self.data_version = version
        conn.execute("BEGIN")
        try:
            last = newest(conn)
            events = self._read(conn, last + 1) if last > self.seen else []
        finally:
            conn.execute("COMMIT")
        self.seen = max(self.seen, last)
        return events

    def _read(self, conn: sqlite3.Connection, before: int) -> list:
        rows = conn.execute("SELECT id, events FROM changes WHERE id > ? AND id < ? ORDER BY id",
                            (self.seen, before)).fetchall()
        if len(rows) != before - self.seen - 1:
            return [Overflowed()]  # pruned before this process read them: it must re-read everything
        return [event for row in rows for event in decode(row[1])]
