"""The SQLite connection layer: one writer thread with group commit, a pool of readers.

Every write is a function ``job(tx)`` handed to the writer thread. The writer takes every
job waiting at that moment, runs each inside its own SAVEPOINT (so one failing job does
not undo its neighbours), commits once, syncs the WAL file (see "Durability" below) and
only then wakes the callers and publishes their change events (when more jobs wait, it
first writes the next batch, then wakes the callers of this one: their work then overlaps
the next batch rather than the writer's statements). Many concurrent deliveries therefore
share one fsync, and a caller that gets a result knows its write is on disk.

A job may also be one item of a *group* (``write_grouped``): neighbouring items of the
same group function in a batch are handed to it together, so a burst of deliveries costs
a handful of statements per commit instead of a handful per delivery. Every statement
the writer runs lets go of the GIL and has to win it back from the threads preparing the
next messages, so under load the writer's statement count costs more than SQLite's own
work. If a group fails, its items are run again one by one, each in its own SAVEPOINT, so a bad
item still fails alone.

Readers use a small pool of connections in WAL mode, so reads never wait for the writer.

Several processes may write to one file (the workers of ``[server] workers``, the CLI). Each
writer thread takes an ``flock`` on the file's lock file (``<name>-lock``) before its
``BEGIN IMMEDIATE`` and lets go after the COMMIT: a writer that finds SQLite's write lock
taken would wait in SQLite's busy handler, which sleeps 1, 2, 5, 10, ... ms between looks,
far longer than a batch holds the lock; the kernel wakes an flock waiter the moment the lock
is free. While it waits, more jobs queue up and go into the same commit. SQLite's busy
timeout still covers a writer that takes no flock (the sqlite3 shell).

Durability. A durable database (``synchronous="FULL"``, the store) is written with
``PRAGMA synchronous=NORMAL``: in WAL mode the COMMIT then appends the transaction's frames
to the ``-wal`` file without an fsync. The writer lets go of the flock, calls ``fdatasync``
on the ``-wal`` file itself, and only then wakes its callers. The fsync, 0.5-5 ms of disk
time, so no longer sits inside the turn the processes take one at a time: the next process
writes its batch meanwhile. (SQLite's own syncs stay in the turn: an automatic checkpoint's,
about every 1,000 pages of WAL, and the WAL header's when a commit starts the file anew.) Why every acknowledged write is still on disk, and the file
consistent, after a power loss:

- A WAL frame carries a checksum over itself and every frame before it, and the salts of the
  WAL header; recovery reads frames from the start and keeps the transactions up to the last
  commit frame before the first frame that does not check out. A torn or unsynced tail
  (another process's newer commit) is dropped; our frames and everything before them, in the
  file when our ``fdatasync`` ran, are kept. So once it returns, our commit and every commit
  before it are durable: a caller of a later commit never depends on an earlier one that is
  not, whichever process made it.
- A checkpoint, which any writer may run after its COMMIT, syncs the WAL before it copies
  frames into the database file and the database file after, at ``NORMAL`` as at ``FULL``.
  One that ran between our COMMIT and our ``fdatasync`` has made our transaction durable
  either way: in the WAL, or in the database file.
- The next writer restarts the WAL from its start (new salts, frames overwritten) only after
  a checkpoint copied every frame, ours too, into the database file and synced it; SQLite
  syncs the new WAL header before reusing the file. Our ``fdatasync`` may then sync frames of
  another transaction: harmless.
- The ``-wal`` file is deleted only by the last connection to close, and our writer's
  connection stays open, so it is one file for the writer's life. The descriptor we sync is
  still checked against the path before each sync (``_Wal``); a new file is opened, and its
  folder synced so that its name survives too.
- Every connection that writes this file syncs its checkpoints: ours and the readers
  (``NORMAL``/``FULL``), the CLI's, which open it through this class, migrations, backups and
  the sqlite3 shell (SQLite's default, ``FULL``). A connection with ``synchronous=OFF`` would
  break this, as it would break ``FULL`` commits: none opens the store. The runtime database
  (``store/runtime.py``, ``OFF``) and the search index (``NORMAL``, rebuilt if lost) are
  files of their own, with their own WALs.
- A SIGKILL loses nothing at any point: what a process wrote is in the kernel's page cache.

What changes: readers, of this process and the others, see a commit from its COMMIT on, up
to one ``fdatasync`` before it is on disk; after a power loss in that moment a session may
have shown a change that is gone, though no client was acknowledged for it. Synced frames are
never written again, but the next commit's frames may share a disk sector with the last of
them: like SQLite at every level on Linux (its unix VFS assumes "powersafe overwrite" and pads
nothing), this trusts the disk not to damage a sector's old bytes when writing new ones. A
file SQLite cannot put in WAL mode keeps SQLite's own FULL commits.

The store's database also keeps a change journal (``journal``): each batch with events
writes them in its own transaction, and the writer thread publishes the events other
processes committed, as soon as it notices them (see ``_hear_others``).
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import queue
import sqlite3
import struct
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from appliance.store.errors import StorageFull
from appliance.store.journal import Journal

log = logging.getLogger("kotakpos.store")

# How many jobs one commit may carry; bounds the latency of the first job in a batch.
MAX_BATCH = 512
READER_POOL = 16
# Prepared statements kept per connection: grouped writes use one text per row count.
CACHED_STATEMENTS = 512
# SQLite's own page cache, per connection. Readers keep a small one: there are up to
# READER_POOL of them, and once POP3 and IMAP sessions had read eight big mailboxes, 4 MiB
# caches left the server at 223 MB resident (145 MB with these) for as long as it ran.
# The pages they stop caching are still in the kernel's page cache, a read call away.
WRITER_CACHE_KIB = 4096
READER_CACHE_KIB = 512
# How often the writer asks SQLite whether another process committed, when nothing else
# told it. A process that writes to the store pokes the running server (``catch_up``) and
# the writer reads the journal whenever its own commit shows that others wrote in between;
# this check only catches a writer that could do neither (a CLI killed before its poke, the
# sqlite3 shell), so it may be slow. It is one PRAGMA: a few microseconds once a second.
CHECK_SECONDS = 1.0
# The file every writer of the database flocks while it writes (see the module docstring).
# Its first 8 bytes hold the newest journal row id, written by each writer after its commit
# while it still holds the flock, so the number only grows; sessions read it through a
# shared mapping (``catch_up_if_behind``): no statement, no lock, no switch of thread.
LOCK_SUFFIX = "-lock"
_HEAD = struct.Struct("<Q")


def create_private(path: Path | str) -> Path:
    """Make ``path`` an empty file of mode 0600 (in a 0700 folder) unless it exists.

    An empty file is a new SQLite database, and SQLite gives its -wal, -shm and journal
    files the database's own mode: so mail stays private whatever umask we run under.
    """
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return path


def _open_lock_file(path: Path) -> tuple[int, mmap.mmap]:
    """A descriptor of the database's lock file (see LOCK_SUFFIX), made if missing, and a
    shared mapping of its journal head.

    Made by root (an admin's ``sudo kotakpos ...``), it is given to the database's owner, as
    SQLite does with its -wal and -shm files, so that the server's own user can still open it.
    """
    fd = os.open(create_private(path.with_name(path.name + LOCK_SUFFIX)), os.O_RDWR)
    if os.geteuid() == 0:
        owner = os.stat(path)
        os.fchown(fd, owner.st_uid, owner.st_gid)
    if os.fstat(fd).st_size < _HEAD.size:  # made by this or an older version: the head is 0
        os.ftruncate(fd, _HEAD.size)
    return fd, mmap.mmap(fd, _HEAD.size)


class _Wal:
    """The database's ``-wal`` file, synced by the writer after its commits (see "Durability")."""

    def __init__(self, db_path: Path):
        self.path = db_path.with_name(db_path.name + "-wal")
        self.fd = -1
        self.identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file ``fd`` is

    def sync(self) -> None:
        """``fdatasync`` the file now at the path, opening it first if it is not the one held."""
        now = os.stat(self.path)
        if (now.st_dev, now.st_ino) != self.identity:
            self.close()
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            opened = os.fstat(self.fd)
            self.identity = (opened.st_dev, opened.st_ino)
            # SQLite syncs the folder of a WAL it made at its first sync, which at NORMAL is
            # the first checkpoint's: until then the file's name could be lost with its frames.
            folder = os.open(self.path.parent, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.identity = -1, None


def connect(path: Path | str, synchronous: str = "FULL", cache_kib: int = WRITER_CACHE_KIB) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=60,
                           cached_statements=CACHED_STATEMENTS)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA cache_size=-{cache_kib}")
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
    __slots__ = ("fn", "group", "item", "done", "result", "error", "events")

    # ``done`` is a plain lock, taken here and released by the writer when the job is
    # committed: cheaper for both threads than an Event, and nobody waits twice.

    def __init__(self, fn, group=None, item=None):
        self.fn = fn  # fn(tx) -> result; None for a grouped item
        self.group = group  # group(tx, items) -> results, for an item of write_grouped
        self.item = item
        self.done = threading.Lock()
        self.done.acquire()
        self.result = None
        self.error: BaseException | None = None
        self.events: list[Any] = []

    def run(self, tx: Tx) -> Any:
        return self.fn(tx) if self.group is None else self.group(tx, [self.item])[0]


def _catch_up(tx: Tx) -> None:
    """The job ``Database.catch_up`` queues: the writer reads the journal after its batch."""


class Database:
    """Owns the database file: the writer thread and the reader pool."""

    def __init__(self, path: Path, publish: Callable[[list], None], max_batch: int = MAX_BATCH,
                 synchronous: str = "FULL", journal: bool = False):
        """``synchronous="FULL"``: a write returns once it is on disk (module docstring,
        "Durability"); ``"NORMAL"``: once committed. ``journal``: keep the change journal
        (the store's schema has its table)."""
        self.path = Path(path)
        self.max_batch = max_batch
        self.synchronous = synchronous
        self._publish = publish
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer_conn = connect(self.path, synchronous)
        self._wal: _Wal | None = None
        wal_mode = self._writer_conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        if synchronous == "FULL" and wal_mode:  # else SQLite's own FULL commits (no WAL to sync)
            self._writer_conn.execute("PRAGMA synchronous=NORMAL")
            self._wal = _Wal(self.path)
        # Opened by this object, never inherited: an flock held through a descriptor that a
        # fork() shares would not keep the other process out.
        self._lock_fd, self._head = _open_lock_file(self.path)
        self._journal = Journal(self._writer_conn) if journal else None
        self._journal_row: tuple[int, list] | None = None  # (row id, others' events) of the batch in flight
        # The journal row up to which every other process's commit is published here; set by
        # the writer thread after publishing, read by sessions (catch_up_if_behind).
        self.heard = self._journal.seen if journal else 0
        # This process's own journal row, when every row before it was heard: committed but
        # not yet marked heard, it is no reason to catch up (nobody was answered for it yet).
        self._own_row = 0
        self._next_check = time.monotonic() + CHECK_SECONDS
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._reader_count = 0
        self._reader_lock = threading.Lock()
        self._all_readers: list[sqlite3.Connection] = []
        self._pinned = threading.local()  # .conn: this thread's reader while a snapshot() block runs
        self.commits = 0  # how many commits (each with its sync) the writer made (for benchmarks and tests)
        # Called in the writer thread after each commit that wrote a journal row; must not
        # block (a worker rings the other workers: net/doorbell.py).
        self.after_journal_row: Callable[[], None] | None = None
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._writer.start()

    # -- writing -----------------------------------------------------------------------

    def write(self, fn: Callable[[Tx], Any]) -> Any:
        """Run ``fn(tx)`` in the writer thread; return its result once committed and fsynced."""
        if self._closed:
            raise RuntimeError("store is closed")
        return self._wait(_Job(fn))

    def write_grouped(self, group: Callable[[Tx, list], list], item: Any) -> Any:
        """Like ``write``, for one ``item`` that ``group(tx, items)`` can write together with others.

        ``group`` gets the items of neighbouring jobs in the batch that name the same
        group and returns their results in order. It must write nothing outside ``tx``:
        when it raises, its work is rolled back and each item is tried again alone
        (``group(tx, [item])``), so one bad item fails alone, as with ``write``.
        """
        if self._closed:
            raise RuntimeError("store is closed")
        return self._wait(_Job(None, group, item))

    def catch_up(self) -> None:
        """Publish what other processes committed and this one has not heard yet; returns
        once it is published (a process that wrote to the file asks the server for this)."""
        if self._journal is not None:
            self.write(_catch_up)

    def catch_up_if_behind(self) -> None:
        """``catch_up`` if another process committed since this one last heard.

        What another process acknowledged is in the file before its client hears the answer,
        so a session that calls this before answering from what its process has heard (events,
        cached answers) includes every commit acknowledged before its command came. When
        nothing is new it costs a read of the lock file's mapped head (LOCK_SUFFIX)."""
        if self._journal is None or self._closed:
            return
        last = _HEAD.unpack_from(self._head)[0]
        if last > self.heard and last != self._own_row:
            self.catch_up()

    def _wait(self, job: _Job) -> Any:
        self._jobs.put(job)
        job.done.acquire()
        if job.error is not None:
            if is_disk_full(job.error):
                # Every protocol answers this with its own "try again later" reply.
                raise StorageFull("not enough disk space on the server") from job.error
            raise job.error
        return job.result

    def _write_loop(self) -> None:
        conn = self._writer_conn
        committed: list[_Job] = []  # the batch committed last, whose callers are not told yet
        while True:
            try:
                first = self._jobs.get_nowait()
            except queue.Empty:
                self._finish(committed)
                # hold no finished job while idle: a result (10,000 rows after a big STORE)
                # would stay in memory until the next write
                committed, batch, first = [], None, None
                first = self._next_job()
            if first is None:
                break
            batch = [first]
            self._take_waiting(batch)
            if all(job.fn is _catch_up for job in batch):
                # Only asked to read the journal (a worker rang after each of its commits):
                # no write transaction, which the other workers' writers would wait for.
                self._finish(committed)
                self._hear_others(conn)
                committed = batch
                continue
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._take_waiting(batch)  # what queued while another process wrote
                # Write this batch before waking the callers of the last one: the statements
                # then run while those threads still sleep (each statement gives up the GIL,
                # and 30 threads analysing their next message would each time keep it for
                # milliseconds), and the callers do their work during this batch's fsync.
                began = self._run_batch(conn, batch)
                self._finish(committed)
                committed = batch
                if not (began and self._commit(conn, batch)):
                    continue
                if self._journal_row is not None:
                    _HEAD.pack_into(self._head, 0, self._journal_row[0])
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            # Out of the turn: another process's writer commits while this one syncs.
            self._sync_wal(batch)
            if self._journal is not None:
                self._journal_committed(conn, batch)
        self._finish(committed)
        conn.close()
        if self._wal is not None:
            self._wal.close()

    def _sync_wal(self, batch: list[_Job]) -> None:
        """Make the committed batch durable; if the disk refuses, each of its jobs fails with
        that error (its client tries again: a duplicate rather than a loss)."""
        if self._wal is None:
            return
        try:
            self._wal.sync()
        except OSError as e:
            log.error("could not sync %s: %s", self._wal.path, e)
            # Committed all the same, and readers see it: this process's caches must hear of it.
            events = [ev for job in batch if job.error is None for ev in job.events]
            if events:
                self._publish(events)
            for job in batch:
                if job.error is None:
                    job.error = e

    def _take_waiting(self, batch: list[_Job]) -> None:
        """Add the jobs waiting now to ``batch``, up to ``max_batch``; leave a stop request queued."""
        while len(batch) < self.max_batch:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is None:
                self._jobs.put(None)
                return
            batch.append(job)

    def _next_job(self) -> _Job | None:
        """Wait for the next job; meanwhile look for other processes' commits now and then."""
        if self._journal is None:
            return self._jobs.get()
        while True:
            try:
                return self._jobs.get(timeout=max(0.0, self._next_check - time.monotonic()))
            except queue.Empty:
                self._hear_others(self._writer_conn)

    def _journal_committed(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        """After a commit: publish the others' events the batch found in the journal, and
        read the journal when a caller asked to or it is time for the safety check."""
        if self._journal_row is not None:
            row_id, others = self._journal_row
            self._journal_row = None
            self._journal.committed(row_id)
            if self.after_journal_row is not None:
                self.after_journal_row()
            if others:
                self._publish(others)
            # this batch's own events are published before its callers hear of it (_finish)
            self.heard = row_id
        if time.monotonic() >= self._next_check or any(job.fn is _catch_up for job in batch):
            self._hear_others(conn)

    def _hear_others(self, conn: sqlite3.Connection) -> None:
        self._next_check = time.monotonic() + CHECK_SECONDS
        try:
            events = self._journal.others(conn)
        except sqlite3.Error as e:  # a busy or full disk: the next check tries again
            log.warning("could not read the change journal: %s", e)
            return
        if events:
            self._publish(events)
        self.heard = max(self.heard, self._journal.seen)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> bool:
        """BEGIN and run every job of the batch; False if the transaction could not begin."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            for job in batch:
                job.error = e
            return False
        start = 0
        while start < len(batch):
            group = batch[start].group
            end = start + 1
            if group is not None:
                while end < len(batch) and batch[end].group == group:
                    end += 1
            if end - start == 1 or not self._run_group(conn, batch[start:end]):
                for job in batch[start:end]:
                    self._run_job(conn, job)
            start = end
        if self._journal is None:
            return True
        events = [ev for job in batch if job.error is None for ev in job.events]
        if not events:
            return True
        try:
            seen = self._journal.seen
            self._journal_row = self._journal.record(conn, events)
            row_id = self._journal_row[0]
            self._own_row = row_id if row_id == seen + 1 else 0
        except sqlite3.Error as e:  # without its journal row the batch would go unheard elsewhere
            self._journal_row = None
            self._fail(conn, batch, e)
            return False
        return True

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> bool:
        """COMMIT the batch; False (and every job failed) if that did not work."""
        try:
            conn.execute("COMMIT")
            self.commits += 1
            return True
        except sqlite3.Error as e:
            log.error("commit failed: %s", e)
            self._journal_row = None
            self._own_row = 0  # rolled back: another process may now write a row of this id
            self._fail(conn, batch, e)
            return False

    @staticmethod
    def _fail(conn: sqlite3.Connection, batch: list[_Job], error: sqlite3.Error) -> None:
        """Roll the batch back; each job not failed already fails with ``error``."""
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        for job in batch:
            if job.error is None:
                job.error = error
                job.events = []

    def _finish(self, batch: list[_Job]) -> None:
        """Publish the events of a batch that is committed (or failed), then wake its callers.

        In this order, every other session has heard of a change before the client that made
        it gets its answer: a command it then sends to another session sees the change."""
        events = [ev for job in batch if job.error is None for ev in job.events]
        if events:
            self._publish(events)
        for job in batch:
            job.done.release()

    @staticmethod
    def _run_job(conn: sqlite3.Connection, job: _Job) -> None:
        tx = Tx(conn)
        conn.execute("SAVEPOINT job")
        try:
            job.result = job.run(tx)
            conn.execute("RELEASE job")
            job.events = tx.events
        except BaseException as e:  # the job's own failure: undo it alone
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            job.error = e

    @staticmethod
    def _run_group(conn: sqlite3.Connection, jobs: list[_Job]) -> bool:
        """Write several items of one group at once; False (and nothing written) if it failed."""
        tx = Tx(conn)
        conn.execute("SAVEPOINT job")
        try:
            results = jobs[0].group(tx, [job.item for job in jobs])
            if len(results) != len(jobs):
                raise RuntimeError("a group returned the wrong number of results")
        except BaseException:  # noqa: BLE001 - each item is retried alone and meets its own error
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return False
        conn.execute("RELEASE job")
        for job, result in zip(jobs, results):
            job.result = result
        jobs[0].events = tx.events  # published in batch order, and only if the commit succeeds
        return True

    # -- reading -----------------------------------------------------------------------

    @contextmanager
    def reader(self):
        """A read connection from the pool; each ``with`` block sees one consistent snapshot.

        Inside a ``snapshot()`` block the thread's pinned connection is handed out instead.
        """
        pinned = getattr(self._pinned, "conn", None)
        if pinned is not None:
            yield pinned
            return
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            with self._reader_lock:
                grow = self._reader_count < READER_POOL
                if grow:
                    self._reader_count += 1
            if grow:
                conn = connect(self.path, self.synchronous, READER_CACHE_KIB)
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

    @property
    def pinned(self) -> bool:
        """True inside a snapshot() block of this thread."""
        return getattr(self._pinned, "conn", None) is not None

    @contextmanager
    def snapshot(self):
        """Make every read of this thread inside the block see one and the same moment.

        For a command that reads in several steps (IMAP FETCH: rows, then parsed forms and
        bodies) and must not find a message gone halfway. Writes are not affected.
        """
        if getattr(self._pinned, "conn", None) is not None:
            yield
            return
        with self.reader() as conn:
            self._pinned.conn = conn
            try:
                yield
            finally:
                self._pinned.conn = None

    def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._writer.join()
        for conn in self._all_readers:
            conn.close()
        self._head.close()
        os.close(self._lock_fd)
