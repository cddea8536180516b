"""The SQLite connection layer: one writer thread with group commit, a pool of readers.

Every write is a function ``job(tx)`` handed to the writer thread. The writer takes every
job waiting at that moment, runs each inside its own SAVEPOINT (so one failing job does
not undo its neighbours), commits once with ``synchronous=FULL`` and only then wakes the
callers and publishes their change events. Many concurrent deliveries therefore share one
fsync, and a caller that gets a result knows its write is on disk.

Readers use a small pool of connections in WAL mode, so reads never wait for the writer.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from appliance.store.errors import StorageFull

log = logging.getLogger("kotakpos.store")

# How many jobs one commit may carry; bounds the latency of the first job in a batch.
MAX_BATCH = 512
READER_POOL = 16


def connect(path: Path | str, synchronous: str = "FULL") -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA cache_size=-4096")
    conn.row_factory = sqlite3.Row
    return conn


def is_disk_full(error: BaseException) -> bool:
    """SQLite could not grow the database or its WAL (ENOSPC, or a file size limit)."""
    return isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


class Tx:
    """What a write job sees: the writer's connection and a list of events to publish after commit."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.events: list[Any] = []

    def execute(self, sql: str, params=()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)

    def emit(self, event: Any) -> None:
        self.events.append(event)


class _Job:
    __slots__ = ("fn", "done", "result", "error", "events")

    def __init__(self, fn):
        self.fn = fn
        self.done = threading.Event()
        self.result = None
        self.error: BaseException | None = None
        self.events: list[Any] = []


class Database:
    """Owns the database file: the writer thread and the reader pool."""

    def __init__(self, path: Path, publish: Callable[[list], None], max_batch: int = MAX_BATCH,
                 synchronous: str = "FULL"):
        self.path = Path(path)
        self.max_batch = max_batch
        self.synchronous = synchronous
        self._publish = publish
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer_conn = connect(self.path, synchronous)
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._reader_count = 0
        self._reader_lock = threading.Lock()
        self._all_readers: list[sqlite3.Connection] = []
        self.commits = 0  # how many fsyncing commits the writer made (for benchmarks and tests)
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._writer.start()

    # -- writing -----------------------------------------------------------------------

    def write(self, fn: Callable[[Tx], Any]) -> Any:
        """Run ``fn(tx)`` in the writer thread; return its result once committed and fsynced."""
        if self._closed:
            raise RuntimeError("store is closed")
        job = _Job(fn)
        self._jobs.put(job)
        job.done.wait()
        if job.error is not None:
            if is_disk_full(job.error):
                # Every protocol answers this with its own "try again later" reply.
                raise StorageFull("not enough disk space on the server") from job.error
            raise job.error
        return job.result

    def _write_loop(self) -> None:
        conn = self._writer_conn
        while True:
            first = self._jobs.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._jobs.put(None)
                    break
                batch.append(job)
            self._run_batch(conn, batch)
        conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            for job in batch:
                job.error = e
                job.done.set()
            return
        for job in batch:
            tx = Tx(conn)
            conn.execute("SAVEPOINT job")
            try:
                job.result = job.fn(tx)
                conn.execute("RELEASE job")
                job.events = tx.events
            except BaseException as e:  # the job's own failure: undo it alone
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                job.error = e
        try:
            conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as e:
            log.error("commit failed: %s", e)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for job in batch:
                if job.error is None:
                    job.error = e
                    job.events = []
        events = [ev for job in batch if job.error is None for ev in job.events]
        for job in batch:
            job.done.set()
        if events:
            self._publish(events)

    # -- reading -----------------------------------------------------------------------

    @contextmanager
    def reader(self):
        """A read connection from the pool; each ``with`` block sees one consistent snapshot."""
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            with self._reader_lock:
                grow = self._reader_count < READER_POOL
                if grow:
                    self._reader_count += 1
            if grow:
                conn = connect(self.path, self.synchronous)
                conn.execute("PRAGMA query_only=ON")
                self._all_readers.append(conn)
            else:
                conn = self._readers.get()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        finally:
            self._readers.put(conn)

    def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._writer.join()
        for conn in self._all_readers:
            conn.close()
