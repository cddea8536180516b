"""The relay queue: one row per remote recipient (see the column comments in migrations).

Queue rows share blobs with mailboxes. The MTA's runners pick due rows, try them and
record the outcome; ``appliance.mta`` holds the retry and bounce rules.
"""

from __future__ import annotations

import json
import os
import time
from typing import Iterable, Sequence

from appliance.store.errors import NotFound
from appliance.store.events import QueueChanged
from appliance.store.models import Notice, QueueEntry, QueueOutcome, QueueRow

_SELECT = ("SELECT q.id, q.sender, q.recipient, q.domain, q.created, q.attempts, q.next_attempt,"
           " coalesce(q.last_error, '') AS last_error, q.state, b.size, q.blob_id, q.dsn, q.warned"
           " FROM queue q JOIN blobs b ON b.id = q.blob_id")


def _queue_row(r) -> QueueRow:
    return QueueRow(**{k: r[k] for k in r.keys()})


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot; Linux's /proc), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name in parentheses may hold spaces: count fields after its ')'
    return stat[stat.rindex(b")") + 2:].split()[19].decode()


def process_token() -> str:
    """This process, as the owner of the rows it claims: a pid, with its start time so
    that a later process given the same pid is not taken for it."""
    return f"{os.getpid()}:{_start_time(os.getpid())}"


def owner_alive(owner: str | None) -> bool:
    if not owner:
        return False  # claimed before rows had owners: by a server that has stopped since
    pid, _, started = owner.partition(":")
    return pid.isdigit() and _start_time(int(pid)) == started


class QueueMixin:
    def _enqueue(self, tx, blob_id: int, entry: QueueEntry, now: float) -> int:
        domain = entry.recipient.rpartition("@")[2].lower().rstrip(".")
        return tx.execute(
            "INSERT INTO queue(blob_id, sender, recipient, domain, dsn, created, next_attempt, state)"
            " VALUES (?,?,?,?,?,?,?, 'queued')",
            (blob_id, entry.sender, entry.recipient, domain, json.dumps(entry.dsn), now, now)).lastrowid

    def list_queue(self, limit: int = 10000) -> list[QueueRow]:
        with self.db.reader() as conn:
            return [_queue_row(r) for r in conn.execute(_SELECT + " ORDER BY q.next_attempt, q.id LIMIT ?", (limit,))]

    def queue_entry(self, queue_id: int) -> QueueRow:
        with self.db.reader() as conn:
            row = conn.execute(_SELECT + " WHERE q.id = ?", (queue_id,)).fetchone()
        if not row:
            raise NotFound(f"no queue entry {queue_id}")
        return _queue_row(row)

    def queue_ids_of_message(self, message_id: str) -> list[int]:
        """The entries of the message the SMTP reply and the log call ``message_id``
        ("queued as 02783ECB9660A699"): one per remote recipient."""
        with self.db.reader() as conn:
            return [r[0] for r in conn.execute(
                "SELECT id FROM queue WHERE json_extract(dsn, '$.message_id') = ? COLLATE NOCASE ORDER BY id",
                (message_id,))]

    def queue_stats(self) -> dict:
        """Depth by state and the age of the oldest entry, for status views."""
        with self.db.reader() as conn:
            by_state = {r["state"]: r["n"] for r in conn.execute("SELECT state, count(*) AS n FROM queue GROUP BY state")}
            oldest = conn.execute("SELECT min(created) FROM queue").fetchone()[0]
        return {"depth": sum(by_state.values()), "by_state": by_state, "oldest": oldest}

    def _queue_update(self, ids: Iterable[int], sql: str, params: tuple, kind: str) -> int:
        id_list = list(ids)

        def job(tx):
            n = 0
            for queue_id in id_list:
                n += tx.execute(sql + " WHERE id = ?", params + (queue_id,)).rowcount
            if n:
                tx.emit(QueueChanged(kind, tuple(id_list)))
            return n

        return self.db.write(job)

    def hold_queue(self, ids: Iterable[int]) -> int:
        return self._queue_update(ids, "UPDATE queue SET state = 'held'", (), "held")

    def release_queue(self, ids: Iterable[int]) -> int:
        return self._queue_update(ids, "UPDATE queue SET state = 'queued'", (), "released")

    def retry_queue(self, ids: Iterable[int]) -> int:
        """Make entries due now (held entries stay held)."""
        return self._queue_update(ids, "UPDATE queue SET next_attempt = ?", (time.time(),), "queued")

    def delete_queue(self, ids: Iterable[int]) -> int:
        id_list = list(ids)

        def job(tx):
            blob_ids = []
            for queue_id in id_list:
                row = tx.execute("DELETE FROM queue WHERE id = ? RETURNING blob_id", (queue_id,)).fetchone()
                if row:
                    blob_ids.append(row["blob_id"])
            self._release_blobs(tx, blob_ids)
            if blob_ids:
                tx.emit(QueueChanged("deleted", tuple(id_list)))
            return len(blob_ids)

        return self.db.write(job)

    # -- the queue runner (appliance.mta.queue) ------------------------------------------

    def requeue_interrupted(self, starting: bool = False) -> int:
        """Rows left 'delivering' by a process that is gone (a stopped server, a killed
        worker) become due again; a live process's deliveries are left to it.

        ``starting``: the caller's queue runner is only starting, so this process delivers
        nothing yet and its own rows are left over from a runner it stopped before.
        Their outcome was never recorded, so they are tried once more (at-least-once).
        """
        with self.db.reader() as conn:
            owners = [r[0] for r in conn.execute("SELECT DISTINCT owner FROM queue WHERE state = 'delivering'")]
        own = process_token()
        gone = [o for o in owners if not owner_alive(o) or (starting and o == own)]
        if not gone:
            return 0
        marks = ",".join("?" * len(gone))
        # IS: a NULL owner (claimed before owners were recorded) matches too
        return self._queue_update_where(
            "UPDATE queue SET state = 'queued', owner = NULL, next_attempt = ? WHERE state = 'delivering'"
            f" AND (owner IS NULL OR owner IN ({marks}))", (time.time(), *gone), "queued")

    def _queue_update_where(self, sql: str, params: tuple, kind: str) -> int:
        def job(tx):
            n = tx.execute(sql, params).rowcount
            if n:
                tx.emit(QueueChanged(kind))
            return n

        return self.db.write(job)

    def due_queue(self, now: float, limit: int = 5000) -> list[QueueRow]:
        """Rows waiting in state 'queued' whose next attempt is due, oldest due first."""
        with self.db.reader() as conn:
            return [_queue_row(r) for r in conn.execute(
                _SELECT + " WHERE q.state = 'queued' AND q.next_attempt <= ? ORDER BY q.next_attempt, q.id LIMIT ?",
                (now, limit))]

    def next_queue_due(self) -> float | None:
        """When the earliest waiting row becomes due (None when nothing waits)."""
        with self.db.reader() as conn:
            return conn.execute("SELECT min(next_attempt) FROM queue WHERE state = 'queued'").fetchone()[0]

    def claim_queue(self, ids: Iterable[int], due_by: float | None = None, held_too: bool = False) -> list[QueueRow]:
        """Mark rows 'delivering' for one runner; returns those it got (still queued — or held,
        with ``held_too`` — and, given ``due_by``, due by then). One claimer per row at a time."""
        id_list = list(ids)
        states = "('queued', 'held')" if held_too else "('queued')"
        owner = process_token()

        def job(tx):
            claimed = []
            for queue_id in id_list:
                sql = f"UPDATE queue SET state = 'delivering', owner = ? WHERE id = ? AND state IN {states}"
                params: tuple = (owner, queue_id)
                if due_by is not None:
                    sql += " AND next_attempt <= ?"
                    params += (due_by,)
                if tx.execute(sql, params).rowcount:
                    claimed.append(queue_id)
            return claimed

        claimed = self.db.write(job)
        if not claimed:
            return []
        with self.db.reader() as conn:
            marks = ",".join("?" * len(claimed))
            rows = conn.execute(_SELECT + f" WHERE q.id IN ({marks}) ORDER BY q.id", claimed).fetchall()
        return [_queue_row(r) for r in rows]

    def finish_queue(self, outcomes: Sequence[QueueOutcome], notices: Sequence[Notice] = ()) -> None:
        """Record one attempt's outcomes and write its notices (DSNs), in ONE transaction.

        "delivered" and "failed" remove the row (and release its blob); "deferred" counts the
        attempt, keeps the error and sets the next attempt (a row held meanwhile stays held).
        Notices go to local mailboxes and/or the queue like ``deliver``. Returns once durable,
        so a remote 250 and the row's removal are never separated by a crash.
        """
        from appliance.store.messages import prepare
        prepared = [(prepare(n.raw), n) for n in notices]
        when = time.time()

        def job(tx):
            removed, deferred, queued = [], [], []
            for o in outcomes:
                if o.action == "deferred":
                    n = tx.execute("UPDATE queue SET attempts = attempts + 1, last_error = ?, next_attempt = ?,"
                                   " warned = max(warned, ?),"
                                   " state = CASE state WHEN 'delivering' THEN 'queued' ELSE state END,"
                                   " owner = NULL WHERE id = ?",
                                   (o.error, o.next_attempt, int(o.warned), o.id)).rowcount
                    if n:
                        deferred.append(o.id)
                else:
                    row = tx.execute("DELETE FROM queue WHERE id = ? RETURNING blob_id", (o.id,)).fetchone()
                    if row:
                        removed.append((o, row["blob_id"]))
            self._release_blobs(tx, [blob_id for _, blob_id in removed])
            for p, notice in prepared:
                blob_id = self._put_blob(tx, p, len(notice.deliveries) + len(notice.queue))
                for d in notice.deliveries:
                    mailbox_id = self._target_mailbox(tx, d.user_id, d.mailbox)
                    self._insert_message(tx, d.user_id, mailbox_id, blob_id, len(p.raw), d.flags, when)
                queued += [self._enqueue(tx, blob_id, entry, when) for entry in notice.queue]
            for kind in ("delivered", "failed"):
                ids = tuple(o.id for o, _ in removed if o.action == kind)
                if ids:
                    tx.emit(QueueChanged("delivered" if kind == "delivered" else "bounced", ids))
            if deferred:
                tx.emit(QueueChanged("deferred", tuple(deferred)))
            if queued:
                tx.emit(QueueChanged("queued", tuple(queued)))

        self.db.write(job)
