"""The admin API over a Unix socket in the data folder (mode 0600), one JSON object per line.

Each exchange, from the client's side (> sent, < received):

    < {"kotakpos": "0.1.0", "api": 1}                       greeting on connect
    > {"id": 1, "method": "sessions", "params": {}}
    < {"id": 1, "result": [...]}                            or {"id": 1, "error": "no session 7"}
    > {"id": 2, "method": "subscribe"}
    < {"id": 2, "result": "subscribed"}
    < {"event": {"type": "session", "kind": "opened", ...}} one line per event until the client closes

Passwords travel only in requests (add_user, set_password) and are never logged or echoed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from pathlib import Path

from appliance import __version__
from appliance.admin.api import AdminAPI, AdminError

log = logging.getLogger("kotakpos.admin")

MAX_REQUEST = 1024 * 1024


class AdminSocketServer:
    def __init__(self, api: AdminAPI, path: Path):
        self.api = api
        self.path = Path(path)
        self._sock: socket.socket | None = None
        self._stopping = False
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        sock.listen(16)
        self._sock = sock
        threading.Thread(target=self._accept_loop, name="admin-accept", daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), name="admin-client", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        send_lock = threading.Lock()

        def send(obj) -> None:
            with send_lock:
                client.sendall(json.dumps(obj, default=str).encode() + b"\n")

        try:
            send({"kotakpos": __version__, "api": 1})
            while True:
                line = reader.readline(MAX_REQUEST)
                if not line:
                    return
                try:
                    request = json.loads(line)
                    method, rid = request["method"], request.get("id")
                except (ValueError, KeyError, TypeError):
                    send({"id": None, "error": "bad request"})
                    continue
                if method == "subscribe":
                    send({"id": rid, "result": "subscribed"})
                    self._stream_events(send)
                    return
                send(self._call(rid, method, request.get("params") or {}))
        except OSError:
            pass
        finally:
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)
            client.close()

    def _call(self, rid, method: str, params: dict) -> dict:
        if method not in AdminAPI.PUBLIC:
            return {"id": rid, "error": f"unknown method {method}"}
        try:
            return {"id": rid, "result": getattr(self.api, method)(**params)}
        except AdminError as e:
            return {"id": rid, "error": str(e)}
        except TypeError:
            return {"id": rid, "error": f"bad parameters for {method}"}
        except Exception:
            log.exception("admin call %s failed", method)
            return {"id": rid, "error": "internal error; see the server log"}

    def _stream_events(self, send) -> None:
        with self.api.subscribe() as sub:
            while not self._stopping:
                event = sub.get(timeout=1.0)
                if event is not None:
                    send({"event": event})

    def stop(self) -> None:
        self._stopping = True
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            for c in self._clients:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.path.unlink(missing_ok=True)
