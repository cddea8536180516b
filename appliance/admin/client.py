"""``AdminClient``: the admin API of a running server, reached over its Unix socket.

It has the same methods as ``AdminAPI`` (``client.sessions()``, ``client.kick(7)`` …), so
the CLI and the TUI do not care whether the server runs in their own process.
"""

from __future__ import annotations

import inspect
import json
import socket
import threading
from pathlib import Path

from appliance.admin.api import AdminAPI, AdminError


class ServerNotRunning(AdminError):
    pass


class AdminClient:
    def __init__(self, path: Path, timeout: float = 30.0):
        self.path = Path(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(self.path))
        except OSError:
            self._sock.close()
            raise ServerNotRunning(f"no Kotakpos server is running (nothing answers at {self.path})") from None
        self._reader = self._sock.makefile("rb")
        try:
            line = self._reader.readline()
        except OSError:
            line = b""
        if not line.endswith(b"\n"):
            # Connected into the backlog of a server that stopped (or was killed) before answering.
            self.close()
            raise ServerNotRunning(f"the server at {self.path} went away before it answered")
        self.greeting = json.loads(line)
        self._ids = 0
        self._lock = threading.Lock()

    def call(self, method: str, **params):
        with self._lock:
            self._ids += 1
            self._sock.sendall(json.dumps({"id": self._ids, "method": method, "params": params}).encode() + b"\n")
            line = self._reader.readline()
        if not line:
            raise ServerNotRunning("the server closed the admin connection")
        reply = json.loads(line)
        if "error" in reply:
            raise AdminError(reply["error"])
        return reply["result"]

    def __getattr__(self, name: str):
        if name not in AdminAPI.PUBLIC:
            raise AttributeError(name)
        signature = inspect.signature(getattr(AdminAPI, name))

        def method(*args, **kwargs):
            bound = signature.bind(None, *args, **kwargs)
            return self.call(name, **{k: v for k, v in bound.arguments.items() if k != "self"})

        return method

    def subscribe(self) -> "EventStream":
        """Live events, like ``AdminAPI.subscribe()``: ``get(timeout)`` and ``close()``.

        Uses its own connection, so calls can go on beside it.
        """
        other = AdminClient(self.path, timeout=None)
        # Events may follow the reply at once: read it through the stream's own buffer.
        stream = EventStream(other._sock)
        try:
            other._sock.sendall(json.dumps({"id": 1, "method": "subscribe"}).encode() + b"\n")
            stream.next_line(timeout=self._sock.gettimeout())
        except (OSError, AdminError):
            stream.close()
            raise ServerNotRunning("the server closed the admin connection") from None
        return stream

    def events(self):
        """Yield live events; uses its own connection, so calls can go on beside it."""
        other = AdminClient(self.path, timeout=None)
        try:
            other._sock.sendall(json.dumps({"id": 1, "method": "subscribe"}).encode() + b"\n")
            json.loads(other._reader.readline())
            while True:
                line = other._reader.readline()
                if not line:
                    return
                yield json.loads(line)["event"]
        finally:
            other.close()

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class EventStream:
    """The event lines of a subscribed admin connection, read with a timeout.

    ``get`` raises ``ServerNotRunning`` once the server has gone away.
    """

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buf = bytearray()

    def get(self, timeout: float | None = None) -> dict | None:
        """The next event, or None when ``timeout`` passes first."""
        line = self.next_line(timeout)
        return None if line is None else line["event"]

    def next_line(self, timeout: float | None) -> dict | None:
        while b"\n" not in self._buf:
            self._sock.settimeout(timeout)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                data = b""
            if not data:
                raise ServerNotRunning("the server closed the admin connection")
            self._buf += data
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf[:] = rest
        return json.loads(line)

    def close(self) -> None:
        # shutdown, not only close: the greeting reader's file object still holds the socket.
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
