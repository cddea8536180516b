"""The relay queue: one row per remote recipient (see the column comments in migrations).

Queue rows share blobs with mailboxes. The MTA's runners pick due rows, try them and
record the outcome; ``appliance.mta`` holds the retry and bounce rules.
"""

from __future__ import annotations

import json
import time
from typing import Iterable

from appliance.store.errors import NotFound
from appliance.store.events import QueueChanged
from appliance.store.models import QueueEntry, QueueRow

_SELECT = ("SELECT q.id, q.sender, q.recipient, q.domain, q.created, q.attempts, q.next_attempt,"
           " coalesce(q.last_error, '') AS last_error, q.state, b.size, q.blob_id, q.dsn"
           " FROM queue q JOIN blobs b ON b.id = q.blob_id")


def _queue_row(r) -> QueueRow:
    return QueueRow(**{k: r[k] for k in r.keys()})


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
