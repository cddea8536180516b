"""The server's runtime state, shared by every process that serves: ``kotakpos-runtime.sqlite``.

What must hold for the server as a whole but is no mail — who is connected (the session
registry), failed logins and blocked addresses, which session took a mailbox's
``\\Recent``, the counters since start — lives here rather than in one process's memory,
so that a server of several worker processes behaves like one: an attacker gets no more
guesses and no more connections with eight workers than with one, and the admin sees and
kicks every worker's sessions.

The connection slots that the limits count (and that give each session its id) are in a
shared mapping beside this file instead (``store.slots``): a connection takes and frees one
without an SQLite statement; what its session is doing is published here in bulk, a few
times a second, by each process's registry.

Why a second SQLite file and not the store: these facts are ephemeral and frequent (the
sessions' descriptions several times a second, a row per failed login) and worthless after
a restart. Through the store's group commit each would wait for an fsync (about 2 ms on an
SSD, far more on an SD card); here the database runs with ``synchronous=OFF`` in WAL
mode, so a write is a few tens of microseconds and never touches the disk's flush. A crash
may lose the file's last writes, which is harmless: the server empties it at every start
(``reset``). SQLite's write lock makes each check-and-take atomic across processes.
Each process records its pid and its start time (``processes``); rows of a process that is
gone — killed, crashed — are dropped by the next process that looks (``drop_dead``,
every few seconds), so a dead worker's connection slots are freed.

The file is private (0600) like every file of the data folder; it never holds a password.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.store.db import create_private
from appliance.store.slots import Slots

SUFFIX = "-runtime.sqlite"
SLOTS_SUFFIX = "-slots"  # the connection slots' mapped table beside the runtime file (``store.slots``)
POOL = 8             # connections kept open for reuse; a burst beyond it opens (and closes) more
BUSY_TIMEOUT = 10.0  # seconds a statement waits for another process's write (each holds it for microseconds)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS processes(   -- every process that serves, while it lives
    pid INTEGER PRIMARY KEY,
    birth TEXT NOT NULL                  -- its start time as the kernel tells it: a reused pid is another process
);
CREATE TABLE IF NOT EXISTS sessions(    -- what each connection's session is doing, as its process last published it
    id INTEGER PRIMARY KEY,              -- the session id: its connection slot's (``store.slots``)
    pid INTEGER NOT NULL,                -- the process serving it
    info TEXT NOT NULL                   -- SessionInfo as JSON (``update_sessions``, every registry.SYNC_SECONDS)
);
CREATE TABLE IF NOT EXISTS kicks(       -- the admin asked the owning process to disconnect a session
    session_id INTEGER PRIMARY KEY,
    pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS failures(    -- failed logins per client address ('ip') and per account ('account')
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    count INTEGER NOT NULL,
    last REAL NOT NULL,                  -- time of the newest failure
    blocked_until REAL NOT NULL,         -- 0: not blocked
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recent_claims(  -- IMAP \\Recent: every UID up to ``upto`` has been claimed
    mailbox_id INTEGER PRIMARY KEY,
    upto INTEGER NOT NULL,
    pid INTEGER NOT NULL                 -- the process whose claim covers ``upto`` (dropped with it)
);
CREATE TABLE IF NOT EXISTS selections(  -- IMAP sessions' selected mailboxes (RFC 2180 §4.1 keeps expunged messages for them)
    session_id INTEGER PRIMARY KEY,
    pid INTEGER NOT NULL,
    mailbox_id INTEGER NOT NULL,
    told INTEGER NOT NULL                -- the session was told of every expunge up to this modseq
);
CREATE INDEX IF NOT EXISTS selections_by_mailbox ON selections(mailbox_id);
CREATE TABLE IF NOT EXISTS counters(    -- each process's counters; pid 0 keeps those of processes gone
    pid INTEGER NOT NULL,
    day TEXT NOT NULL,                   -- '': since the server started; a date: counted that day, not yet in the store
    name TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (pid, day, name)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Failures:
    """Failed logins of one address or account (a row of ``failures``)."""

    key: str
    count: int
    last: float
    blocked_until: float


def path_beside(store_path: Path | str) -> Path:
    store_path = Path(store_path)
    return store_path.with_name(store_path.stem + SUFFIX)


def reset(store_path: Path | str) -> None:
    """Empty the runtime state beside this store: only the process that starts the server
    calls it (it holds the data-folder lock, so nothing else serves from the folder)."""
    path = path_beside(store_path)
    for name in (path.name, path.name + "-wal", path.name + "-shm", path.name + "-lock", path.name + SLOTS_SUFFIX):
        path.with_name(name).unlink(missing_ok=True)
    # Made here, before any worker starts: workers that all made a new file at once would race
    # to switch it to WAL, and SQLite answers the loser "database is locked" without waiting.
    conn = _connect(create_private(path))
    try:
        conn.executescript(_SCHEMA)
    finally:
        conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT)
    # Small pages: a connection's slot writes three pages (table, index, id counter) to
    # the WAL at each commit, and 1 KiB pages cut the CPU of a slot by a third.
    conn.execute("PRAGMA page_size=1024")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")  # the module docstring says why
    conn.execute("PRAGMA cache_size=-256")  # a few pages: the tables are small
    return conn


def process_birth(pid: int) -> str | None:
    """When the kernel started ``pid`` (clock ticks since boot); None when no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc: fall back to asking whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    # the command name (field 2) may hold spaces and parentheses: count from its last ')'
    return stat[stat.rindex(b")") + 2:].split()[19].decode()


class Runtime:
    """The runtime database of one store, as one process uses it. Thread-safe."""

    def __init__(self, store_path: Path | str):
        self.path = create_private(path_beside(store_path))
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []  # connections not in use; one per concurrent caller at most
        # Every write of this process goes through one connection, one at a time, so its
        # page cache stays valid from one write to the next unless another process wrote.
        self._writer = self._connect()
        self._write_lock = threading.Lock()
        self._lock_fd = os.open(create_private(self.path.with_name(self.path.name + "-lock")), os.O_RDWR)
        self._slots = Slots(self.path.with_name(self.path.name + SLOTS_SUFFIX))
        with self._write_lock:
            self._writer.executescript(_SCHEMA)
        self.register()

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        return _connect(self.path)

    @contextmanager
    def _connection(self):
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._lock:
                if len(self._idle) < POOL:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    @contextmanager
    def _write(self, transaction: bool = True):
        """One write transaction: taken at once (IMMEDIATE), so its reads and writes are atomic.

        Writers queue first on a thread lock, then on an ``flock`` of the lock file, and
        only then ask SQLite: SQLite's own busy handler waits by sleeping (1 ms, then 2,
        5, ...), far longer than a write of some tens of microseconds holds the lock,
        while the kernel wakes an flock waiter the moment the lock is free.
        ``transaction=False`` for a single statement, which is atomic on its own.
        """
        with self._write_lock:
            conn = self._writer
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                if not transaction:
                    yield conn
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        with self._write_lock:
            self._writer.close()
        os.close(self._lock_fd)
        self._slots.close()

    # -- processes ---------------------------------------------------------------------------

    def register(self) -> None:
        """Record this process as serving; first drop what dead processes left behind."""
        self.drop_dead()
        birth = process_birth(self.pid) or "?"
        with self._write() as conn:
            row = conn.execute("SELECT birth FROM processes WHERE pid = ?", (self.pid,)).fetchone()
            if row is not None and row[0] != birth:
                self._forget(conn, self.pid)  # a dead process that had our pid
            conn.execute("INSERT OR REPLACE INTO processes(pid, birth) VALUES (?, ?)", (self.pid, birth))
        if row is not None and row[0] != birth:
            self._slots.forget(self.pid)

    def unregister(self) -> None:
        """This process stops serving: free its rows (its counters stay in the sum)."""
        with self._write() as conn:
            self._forget(conn, self.pid)
        self._slots.forget(self.pid)

    def drop_dead(self) -> list[int]:
        """Free the rows of every recorded process that no longer runs; returns their pids."""
        with self._connection() as conn:
            recorded = conn.execute("SELECT pid, birth FROM processes").fetchall()
        dead = [pid for pid, birth in recorded if pid != self.pid and process_birth(pid) not in (birth, "?")]
        for pid in dead:
            self.forget_process(pid)
        return dead

    def forget_process(self, pid: int) -> None:
        """Free what process ``pid`` held (a supervisor calls it when it reaps a worker)."""
        with self._write() as conn:
            self._forget(conn, pid)
        self._slots.forget(pid)

    @staticmethod
    def _forget(conn: sqlite3.Connection, pid: int) -> None:
        """Drop the process's rows; its connection slots are freed by the caller (``Slots.forget``)."""
        conn.execute("DELETE FROM processes WHERE pid = ?", (pid,))
        conn.execute("DELETE FROM sessions WHERE pid = ?", (pid,))
        conn.execute("DELETE FROM kicks WHERE pid = ?", (pid,))
        conn.execute("DELETE FROM recent_claims WHERE pid = ?", (pid,))
        conn.execute("DELETE FROM selections WHERE pid = ?", (pid,))
        # its counters since start stay in the server's sum; what it had not saved is lost, as in a crash
        conn.execute("INSERT INTO counters(pid, day, name, n) SELECT 0, day, name, n FROM counters"
                     " WHERE pid = ? AND day = ''"
                     " ON CONFLICT(pid, day, name) DO UPDATE SET n = n + excluded.n", (pid,))
        conn.execute("DELETE FROM counters WHERE pid = ?", (pid,))

    def processes(self) -> list[int]:
        """The pids of the processes serving now."""
        with self._connection() as conn:
            return [pid for pid, in conn.execute("SELECT pid FROM processes ORDER BY pid")]

    # -- sessions and connection limits ------------------------------------------------------

    def open_session(self, peer_ip: str, max_total: int, max_per_ip: int | None) -> int | None:
        """Take a connection slot for ``peer_ip`` if the server-wide limits allow it.

        ``max_per_ip`` None: this address is exempt from the per-address limit. Returns the
        new session's id, or None when a limit is reached. ``update_sessions`` publishes
        what the session is and does, later and in bulk: the slot alone is what a
        connection must wait for (``store.slots``).
        """
        return self._slots.take(self.pid, peer_ip, max_total, max_per_ip)

    def close_session(self, session_id: int) -> None:
        """Free the session's slot (its published row goes with the next ``update_sessions``)."""
        self._slots.free(session_id)

    def update_sessions(self, described: dict[int, dict], ended: list[int] = ()) -> None:
        """Publish what this process's sessions are doing now (for other processes' admin):
        session id -> its description (``net.registry.SessionInfo``'s fields, JSON-friendly);
        and drop the rows of those of its sessions that ``ended``."""
        rows = [(session_id, self.pid, json.dumps(fields, separators=(",", ":")))
                for session_id, fields in described.items()]
        with self._write() as conn:
            conn.executemany("DELETE FROM sessions WHERE id = ? AND pid = ?", [(sid, self.pid) for sid in ended])
            conn.executemany("INSERT OR REPLACE INTO sessions(id, pid, info) VALUES (?, ?, ?)", rows)

    def session_count(self) -> int:
        """Sessions open server-wide, now: a read of the slots' mapping, no lock."""
        return self._slots.count()

    def sessions(self, other_than: int | None = None) -> list[dict]:
        """Every open session as last published (not those admitted a moment ago and not yet
        published), but those of process ``other_than``: each description with its ``id`` and ``pid``."""
        with self._connection() as conn:
            rows = conn.execute("SELECT id, pid, info FROM sessions WHERE pid IS NOT ? ORDER BY id",
                                (other_than,)).fetchall()
        # a row outlives its session until the owner's next sync: the slots say which still are
        taken = self._slots.taken()
        return [{**json.loads(info), "id": session_id, "pid": pid} for session_id, pid, info in rows
                if session_id in taken]

    def request_kick(self, session_id: int) -> int | None:
        """Ask the process serving the session to disconnect it; returns that pid, None if no such session."""
        pid = self._slots.owner(session_id)
        if pid is None:
            return None
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO kicks(session_id, pid) VALUES (?, ?)", (session_id, pid))
        return pid

    def kicks(self) -> list[int]:
        """The sessions of this process that the admin asked to disconnect (each told once)."""
        with self._connection() as conn:
            kicked = [sid for sid, in conn.execute("SELECT session_id FROM kicks WHERE pid = ?", (self.pid,))]
        if kicked:
            with self._write() as conn:
                conn.executemany("DELETE FROM kicks WHERE session_id = ?", [(sid,) for sid in kicked])
        return kicked

    def session_open(self, session_id: int) -> bool:
        return self._slots.owner(session_id) is not None

    def data_version(self) -> int:
        """Moves when another connection committed: a cheap "has anything changed?"."""
        with self._connection() as conn:
            return conn.execute("PRAGMA data_version").fetchone()[0]

    # -- failed logins and blocks ------------------------------------------------------------

    def failures(self, ip: str, account: str) -> tuple[Failures | None, Failures | None]:
        """The failure rows of a client address and of an account (None: none recorded)."""
        with self._connection() as conn:
            rows = {(kind, key): Failures(key, count, last, until) for kind, key, count, last, until in conn.execute(
                "SELECT kind, key, count, last, blocked_until FROM failures"
                " WHERE (kind = 'ip' AND key = ?) OR (kind = 'account' AND key = ?)", (ip, account))}
        return rows.get(("ip", ip)), rows.get(("account", account))

    def record_failure(self, ip: str, account: str, now: float, forget_after: float,
                       block_after: int | None, block_seconds: float) -> tuple[Failures, Failures]:
        """Count one failed login against the address and the account; returns both rows.

        A row untouched for ``forget_after`` seconds (and not blocked) starts again from
        zero. The address is blocked until ``now + block_seconds`` once its count reaches
        ``block_after`` (None: never, e.g. for a trusted address).
        """
        counted = []
        with self._write() as conn:
            for kind, key in (("ip", ip), ("account", account)):
                count, last, until = conn.execute(
                    "INSERT INTO failures(kind, key, count, last, blocked_until) VALUES (?, ?, 1, ?, 0)"
                    " ON CONFLICT(kind, key) DO UPDATE SET"
                    "  count = CASE WHEN ?3 - last > ?4 AND blocked_until < ?3 THEN 1 ELSE count + 1 END,"
                    "  blocked_until = CASE WHEN ?3 - last > ?4 AND blocked_until < ?3 THEN 0 ELSE blocked_until END,"
                    "  last = ?3"
                    " RETURNING count, last, blocked_until", (kind, key, now, forget_after)).fetchone()
                if kind == "ip" and block_after is not None and count >= block_after:
                    until = now + block_seconds
                    conn.execute("UPDATE failures SET blocked_until = ? WHERE kind = 'ip' AND key = ?", (until, key))
                counted.append(Failures(key, count, last, until))
        return counted[0], counted[1]

    def clear_failures(self, ip: str, account: str) -> None:
        """A right password: forget the address's and the account's failures."""
        with self._write() as conn:
            conn.execute("DELETE FROM failures WHERE (kind = 'ip' AND key = ?) OR (kind = 'account' AND key = ?)",
                         (ip, account))

    def failing_addresses(self) -> list[Failures]:
        """Every address with failures or a block, by address."""
        with self._connection() as conn:
            return [Failures(*row) for row in conn.execute(
                "SELECT key, count, last, blocked_until FROM failures WHERE kind = 'ip' ORDER BY key")]

    def block(self, ip: str, until: float, now: float) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO failures(kind, key, count, last, blocked_until) VALUES ('ip', ?, 0, ?, ?)"
                         " ON CONFLICT(kind, key) DO UPDATE SET blocked_until = excluded.blocked_until, last = ?2",
                         (ip, now, until))

    def unblock(self, ip: str) -> bool:
        """Forget an address's failures and block; False if it had none."""
        with self._write() as conn:
            return conn.execute("DELETE FROM failures WHERE kind = 'ip' AND key = ?", (ip,)).rowcount > 0

    def prune_failures(self, older_than: float, now: float) -> None:
        """Drop rows whose last failure is before ``older_than`` and that block nothing."""
        with self._write() as conn:
            conn.execute("DELETE FROM failures WHERE last < ? AND blocked_until < ?", (older_than, now))

    # -- IMAP \Recent ------------------------------------------------------------------------

    def start_recent_claim(self, mailbox_id: int, uid: int) -> bool:
        """True for the one caller, in any process, whose claim must cover ``uid``: no claim
        covering it has begun before (the store's ``claim_recent_upto`` says why that is enough)."""
        with self._connection() as conn:
            row = conn.execute("SELECT upto FROM recent_claims WHERE mailbox_id = ?", (mailbox_id,)).fetchone()
        if row is not None and row[0] >= uid:
            return False  # the common case, a hundred idlers told of one message: no write
        with self._write() as conn:
            return conn.execute(
                "INSERT INTO recent_claims(mailbox_id, upto, pid) VALUES (?, ?, ?)"
                " ON CONFLICT(mailbox_id) DO UPDATE SET upto = excluded.upto, pid = excluded.pid"
                " WHERE upto < excluded.upto", (mailbox_id, uid, self.pid)).rowcount == 1

    def forget_recent_claims(self, mailbox_ids: list[int]) -> None:
        """These mailboxes were made or removed: SQLite may give a new mailbox a freed id."""
        with self._write() as conn:
            conn.executemany("DELETE FROM recent_claims WHERE mailbox_id = ?", [(m,) for m in mailbox_ids])

    # -- counters ----------------------------------------------------------------------------

    # -- IMAP selections: who may still ask for an expunged message (RFC 2180 §4.1) -----------

    def select(self, session_id: int, mailbox_id: int | None, told: int = 0) -> None:
        """Session ``session_id`` has ``mailbox_id`` selected and was told of every expunge up
        to modseq ``told``; None: it has no mailbox selected."""
        with self._write(transaction=False) as conn:
            if mailbox_id is None:
                conn.execute("DELETE FROM selections WHERE session_id = ?", (session_id,))
            else:
                conn.execute("INSERT OR REPLACE INTO selections(session_id, pid, mailbox_id, told) VALUES (?, ?, ?, ?)",
                             (session_id, self.pid, mailbox_id, told))

    def told_horizon(self, mailbox_id: int, other_than: int | None = None) -> int | None:
        """The modseq up to which every session with ``mailbox_id`` selected (but ``other_than``)
        was told of the expunges; None when no session has it selected."""
        with self._connection() as conn:
            return conn.execute("SELECT min(told) FROM selections WHERE mailbox_id = ? AND session_id IS NOT ?",
                                (mailbox_id, other_than)).fetchone()[0]

    def publish_counters(self, since_start: dict[str, int], unsaved: dict[tuple[str, str], int]) -> None:
        """This process's counters since it started, and those counted per day but not yet
        in the store, replacing what it published before."""
        rows = [(self.pid, "", name, n) for name, n in since_start.items()]
        rows += [(self.pid, day, name, n) for (day, name), n in unsaved.items() if n]
        with self._write() as conn:
            conn.execute("DELETE FROM counters WHERE pid = ?", (self.pid,))
            conn.executemany("INSERT INTO counters(pid, day, name, n) VALUES (?, ?, ?, ?)", rows)

    def counters(self, day: str = "", other_than: int | None = None) -> dict[str, int]:
        """The server's counters since start (``day`` ''), or counted on ``day`` and not yet
        saved; summed over every process but ``other_than``."""
        with self._connection() as conn:
            return dict(conn.execute("SELECT name, sum(n) FROM counters WHERE day = ? AND pid IS NOT ? GROUP BY name",
                                     (day, other_than)))
