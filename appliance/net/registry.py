"""The live session registry: who is connected, doing what, for the admin API and the TUI."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable


@dataclass
class SessionInfo:
    id: int                    # unique for the server's life; admin's kick takes it
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

    @property
    def protocol(self) -> str:
        return {"submission": "smtp", "smtps": "smtp", "pop3s": "pop3", "imaps": "imap"}.get(self.listener, self.listener)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["protocol"] = self.protocol
        return d


class SessionRegistry:
    def __init__(self):
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sessions: dict[int, tuple[SessionInfo, object]] = {}
        self._listeners: list[Callable[[str, SessionInfo], None]] = []

    def open(self, listener: str, peer_ip: str, peer_port: int, local_port: int) -> SessionInfo:
        return SessionInfo(next(self._ids), listener, peer_ip, peer_port, local_port)

    def add(self, info: SessionInfo, conn) -> None:
        with self._lock:
            self._sessions[info.id] = (info, conn)
        conn.on_command = lambda: self._notify("command", info)
        self._notify("opened", info)

    def remove(self, info: SessionInfo) -> None:
        with self._lock:
            self._sessions.pop(info.id, None)
        self._notify("closed", info)

    def list(self) -> list[SessionInfo]:
        with self._lock:
            return [info for info, _ in self._sessions.values()]

    def connections(self) -> list:
        with self._lock:
            return [conn for _, conn in self._sessions.values()]

    def kick(self, session_id: int) -> bool:
        """Disconnect one session; True if it existed."""
        with self._lock:
            entry = self._sessions.get(session_id)
        if not entry:
            return False
        entry[1].abort()
        return True

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def on_change(self, callback: Callable[[str, SessionInfo], None]) -> Callable[[], None]:
        """Call ``callback(kind, info)`` when a session opens, runs a command or closes.

        ``kind`` is "opened", "command" or "closed". Returns an unsubscribe function.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _notify(self, kind: str, info: SessionInfo) -> None:
        for callback in list(self._listeners):
            try:
                callback(kind, info)
            except Exception:  # a broken observer must not break a session
                pass
