"""The server's recent log lines, kept in memory for the admin API's live log view.

A ``logging.Handler`` on the ``kotakpos`` logger: each record is formatted once, kept in a
bounded ring (the newest ``capacity`` lines) and handed to a callback that publishes it as
an admin event. Log lines never carry secrets (the protocols redact before logging), so
the ring may be shown as is.

With ``[server] workers`` the ring lives in the first worker, beside the admin socket. The
supervisor and the other workers send it their lines as datagrams (``LogForwarder`` →
``LogRing.listen``), so the log view shows every process's lines, each with its pid. A
datagram needs no connection: lines sent while the first worker restarts reach only
stderr and the log file, and a line never waits for the admin.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable

MESSAGE_MAX = 4000  # characters of one forwarded line's message: a datagram stays far below the socket's limit
# After the first line of a burst, the listener lets this long pass and then takes every line
# waiting in one wake-up: two lines per accepted message from each other worker otherwise
# woke the first worker's thread twice a message (a thread switch and a turn at the
# interpreter lock each). The live log view lags by at most this; the socket's queue (512
# datagrams by default) holds the lines of far more than 10,000 a second meanwhile.
GATHER = 0.05
LISTEN_TIMEOUT = 1.0  # seconds the listener waits for a line before it looks whether it was closed


def log_line(record: logging.LogRecord) -> dict:
    """A log record as the admin's log view gets it (the same from every process)."""
    text = record.getMessage()
    if record.exc_info:
        # The exception's type and message only: a full traceback would swamp the view.
        text += f" ({record.exc_info[0].__name__}: {record.exc_info[1]})"
    return {"type": "log", "time": record.created, "level": record.levelname, "name": record.name,
            "pid": record.process, "message": text}


class LogRing(logging.Handler):
    def __init__(self, publish: Callable[[dict], None], capacity: int = 2000):
        super().__init__()
        self._publish = publish
        self._lines: collections.deque[dict] = collections.deque(maxlen=capacity)
        self._ring_lock = threading.Lock()
        self._listening: socket.socket | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.add(log_line(record))
        except Exception:
            self.handleError(record)

    def add(self, line: dict) -> None:
        with self._ring_lock:
            self._lines.append(line)
        self._publish(line)

    def tail(self, limit: int) -> list[dict]:
        """The newest ``limit`` lines, oldest first."""
        with self._ring_lock:
            lines = list(self._lines)
        return lines[-limit:] if limit > 0 else []

    def listen(self, path: Path) -> None:
        """Also keep the lines other processes send to ``path`` (a ``LogForwarder``'s)."""
        path.unlink(missing_ok=True)  # left by this process's predecessor
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.settimeout(LISTEN_TIMEOUT)
        self._listening = sock
        threading.Thread(target=self._hear, args=(sock,), name="admin-log", daemon=True).start()

    def _hear(self, sock: socket.socket) -> None:
        while self._listening is sock:
            try:
                burst = [sock.recv(65536)]
            except TimeoutError:
                continue
            except OSError:
                return
            time.sleep(GATHER)
            try:
                sock.settimeout(0)  # non-blocking: take only the lines waiting now
                while True:
                    burst.append(sock.recv(65536))
            except BlockingIOError:
                sock.settimeout(LISTEN_TIMEOUT)
            except OSError:
                return
            for data in burst:
                self._keep(data)

    def _keep(self, data: bytes) -> None:
        """Add one forwarded line to the ring."""
        try:
            line = json.loads(data)
            self.add({"type": "log", "time": float(line["time"]), "level": str(line["level"]),
                      "name": str(line["name"]), "pid": int(line["pid"]), "message": str(line["message"])})
        except (ValueError, KeyError, TypeError):
            pass  # not one of ours: the socket is 0600 in a 0700 folder, but never trust a datagram

    def close(self) -> None:
        sock, self._listening = self._listening, None
        if sock is not None:
            sock.close()
        super().close()


class LogForwarder(logging.Handler):
    """Sends each line to the ring of another process (``LogRing.listen``) without waiting:
    when nobody listens (the first worker restarts) or its queue is full, the line is dropped
    here and kept by the process's other handlers (stderr, the log file)."""

    def __init__(self, path: Path):
        super().__init__()
        self._path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = log_line(record)
            line["message"] = line["message"][:MESSAGE_MAX]
            self._sock.sendto(json.dumps(line).encode(), self._path)
        except OSError:
            pass
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._sock.close()
        super().close()


def off_terminal() -> list[logging.Handler]:
    """Take the ``kotakpos`` logger's handlers that write to the terminal off it (while the
    TUI owns the terminal, lines written across it would garble it); returns them for
    ``back_on_terminal``. The log file, if configured, and the log view still get every line."""
    logger = logging.getLogger("kotakpos")
    on_terminal = [h for h in logger.handlers
                   if type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.stdout)]
    for handler in on_terminal:
        logger.removeHandler(handler)
    return on_terminal


def back_on_terminal(handlers: list[logging.Handler]) -> None:
    for handler in handlers:
        logging.getLogger("kotakpos").addHandler(handler)
