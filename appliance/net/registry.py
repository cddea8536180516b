"""The live session registry: who is connected, doing what, for the admin API and the TUI.

A server may be several worker processes, so the registry has two halves. This
process's sessions live here, in memory, with their connections (to read their
figures and to disconnect them). What must hold for the server as a whole is kept in a
*shared* state that every process reaches (the store's ``runtime.Runtime``, passed in:
``net`` imports nothing of ours): a connection slot per admitted connection, taken in the
same atomic step that checks the server-wide connection limits, whose id is the session
id; and a table of what each session is doing. A sync thread publishes what this
process's sessions are doing a few times a second (and drops the rows of those that ended),
acts on the admin's requests to disconnect one of them (written by whichever process
serves the admin), and tells observers of the other processes' sessions opening,
working and closing.

Why requests through the shared table rather than a small admin endpoint in each process
that the admin fans out to: the table exists anyway for the limits; it needs no
per-process socket to find, reach and time out on; and a process that dies leaves
nothing behind that others must handle (its rows are dropped, see ``store.runtime``).
The price is a delay of at most SYNC_SECONDS before another process acts on a kick.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

log = logging.getLogger("kotakpos.net")

SYNC_SECONDS = 0.25   # how often a process publishes its sessions and looks for kicks
WATCH_SECONDS = 1.0   # how often other processes' sessions are compared, for live views
REAP_SECONDS = 5.0    # how often the rows of dead processes are looked for
KICK_WAIT = 3.0       # how long kick() waits for another process to disconnect its session


@dataclass
class SessionInfo:
    id: int                    # unique server-wide for the server's life; admin's kick takes it
    listener: str              # smtp, submission, smtps, pop3, pop3s, imap, imaps, managesieve
    peer_ip: str
    peer_port: int
    local_port: int
    started: float = field(default_factory=time.time)
    user: str = ""             # set by the session after a successful login
    tls: str = ""              # TLS version once encrypted
    state: str = "connected"   # the protocol's state name
    bytes_in: int = 0
    bytes_out: int = 0
    commands: int = 0
    last_command: str = ""     # without passwords or AUTH payloads
    last_active: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)  # the worker process serving it

    @property
    def protocol(self) -> str:
        return {"submission": "smtp", "smtps": "smtp", "pop3s": "pop3", "imaps": "imap"}.get(self.listener, self.listener)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["protocol"] = self.protocol
        return d


class SessionRegistry:
    def __init__(self, shared):
        """``shared``: the server-wide table (``store.runtime.Runtime``)."""
        self.shared = shared
        self._lock = threading.Lock()
        self._sessions: dict[int, tuple[SessionInfo, object]] = {}
        self._published: dict[int, tuple] = {}  # session id -> its figures as last published
        self._ended: list[int] = []            # published sessions that ended since: their rows go next sync
        self._listeners: list[Callable[[str, SessionInfo], None]] = []
        self._stop = threading.Event()
        self._sync: threading.Thread | None = None

    # -- admission -------------------------------------------------------------------------

    def admit(self, listener: str, peer_ip: str, peer_port: int, local_port: int,
              max_total: int, max_per_ip: int | None) -> SessionInfo | None:
        """A new session if the server-wide limits allow one more connection (``max_per_ip``
        None: this address is not limited), else None. ``remove`` frees its slot."""
        session_id = self.shared.open_session(peer_ip, max_total, max_per_ip)
        if session_id is None:
            return None
        return SessionInfo(session_id, listener, peer_ip, peer_port, local_port)

    @property
    def server_total(self) -> int:
        """Connections open in every process, now."""
        return self.shared.session_count()

    def add(self, info: SessionInfo, conn) -> None:
        with self._lock:
            self._sessions[info.id] = (info, conn)
        # partial, not a lambda: called after every command, it then adds no Python frame
        conn.on_command = functools.partial(self._notify, "command", info)
        self._notify("opened", info)

    def remove(self, info: SessionInfo) -> None:
        """The session ended (or was never started): free its slot."""
        with self._lock:
            self._sessions.pop(info.id, None)
            if self._published.pop(info.id, None) is not None:
                self._ended.append(info.id)
        try:
            self.shared.close_session(info.id)
        finally:
            self._notify("closed", info)

    # -- this process's sessions -----------------------------------------------------------

    def list(self) -> list[SessionInfo]:
        with self._lock:
            return [info for info, _ in self._sessions.values()]

    def connections(self) -> list:
        with self._lock:
            return [conn for _, conn in self._sessions.values()]

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    # -- the whole server ------------------------------------------------------------------

    def all(self) -> list[SessionInfo]:
        """Every session of every process: this one's as they are, the others' as last published."""
        return sorted(self.list() + self._others(), key=lambda info: info.id)

    def _others(self) -> list[SessionInfo]:
        return [SessionInfo(**fields) for fields in self.shared.sessions(other_than=os.getpid())]

    def kick(self, session_id: int) -> bool:
        """Disconnect one session, whichever process serves it; True if it existed.

        Another process's session is asked for in the shared table; its sync thread
        disconnects it within SYNC_SECONDS, and this call waits for that (up to KICK_WAIT).
        """
        with self._lock:
            entry = self._sessions.get(session_id)
        if entry:
            entry[1].abort()
            return True
        if self.shared.request_kick(session_id) is None:
            return False
        deadline = time.monotonic() + KICK_WAIT
        while self.shared.session_open(session_id) and time.monotonic() < deadline:
            time.sleep(SYNC_SECONDS / 5)
        return True

    # -- observers -------------------------------------------------------------------------

    def on_change(self, callback: Callable[[str, SessionInfo], None]) -> Callable[[], None]:
        """Call ``callback(kind, info)`` when a session of any process opens, runs a command or closes.

        ``kind`` is "opened", "command" or "closed". This process's sessions are told at
        once; other processes' within WATCH_SECONDS, as their published rows change.
        Returns an unsubscribe function.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _notify(self, kind: str, info: SessionInfo) -> None:
        for callback in list(self._listeners):
            try:
                callback(kind, info)
            except Exception:  # a broken observer must not break a session
                pass

    # -- the sync thread -------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._sync = threading.Thread(target=self._sync_loop, name="registry-sync", daemon=True)
        self._sync.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sync is not None:
            self._sync.join(5.0)
            self._sync = None

    def _sync_loop(self) -> None:
        next_watch = next_reap = 0.0
        others: dict[int, SessionInfo] = {}
        version = None
        while not self._stop.wait(SYNC_SECONDS):
            try:
                self.sync()
                now = time.monotonic()
                if now >= next_reap:
                    next_reap = now + REAP_SECONDS
                    for pid in self.shared.drop_dead():
                        log.warning("freed the sessions of process %d, which has ended", pid)
                if now >= next_watch and self._listeners:
                    next_watch = now + WATCH_SECONDS
                    seen = self.shared.data_version()
                    if seen != version:
                        version = seen
                        others = self._compare(others)
            except Exception:  # e.g. the disk is full: try again on the next round
                log.exception("session registry sync failed")

    def sync(self) -> None:
        """Publish this process's sessions that changed, drop the rows of those that ended,
        disconnect those the admin kicked."""
        changed = []
        with self._lock:
            for session_id, (info, _) in self._sessions.items():
                figures = (info.commands, info.bytes_in, info.bytes_out, info.state, info.user, info.tls)
                if self._published.get(session_id) != figures:
                    self._published[session_id] = figures
                    changed.append(info)
            ended, self._ended = self._ended, []
        if changed or ended:
            try:
                self.shared.update_sessions({info.id: _published_fields(info) for info in changed}, ended)
            except Exception:
                with self._lock:  # their rows must still go
                    self._ended[:0] = ended
                raise
        for session_id in self.shared.kicks():
            with self._lock:
                entry = self._sessions.get(session_id)
            if entry:
                log.info("session %d disconnected by the admin", session_id)
                entry[1].abort()

    def _compare(self, before: dict[int, SessionInfo]) -> dict[int, SessionInfo]:
        """Tell observers how other processes' sessions changed since ``before``."""
        now = {info.id: info for info in self._others()}
        for session_id, info in now.items():
            old = before.get(session_id)
            if old is None:
                self._notify("opened", info)
            elif old != info:
                self._notify("command", info)
        for session_id in before.keys() - now.keys():
            self._notify("closed", before[session_id])
        return now


def _published_fields(info: SessionInfo) -> dict:
    """What other processes learn of a session (its id and pid are the shared row's own)."""
    fields = vars(info).copy()
    del fields["id"], fields["pid"]
    return fields
