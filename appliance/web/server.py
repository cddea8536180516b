"""The HTTP and HTTPS listeners: Starlette applications served by uvicorn.

Why these two: the issue asks for a production HTTP server rather than the stdlib's
``http.server``, and this one must speak TLS itself on 443 with the certificate the mail
listeners use, reloaded without a restart. Waitress (the usual pure-Python partner of
Flask) has no TLS at all; cheroot does TLS but shakes hands in its accepting thread, so one
silent client would stall the others. uvicorn shakes hands in its event loop, where a
silent client costs a coroutine and never a thread, and runs on h11 (pure Python).
Starlette runs our plain functions in a thread pool, so the store's blocking API stays as
it is everywhere else.

Both listeners run in one thread (``web``) with one event loop; each listening socket is
bound here first (``net.listener.bind``), so a taken port is a BindError at ``start()``, as
for every listener.
TLS: every handshake picks the current context from ``tls()`` (the SNI callback swaps it
in), so a reloaded certificate serves the next connection. uvicorn's
``limit_concurrency`` bounds the connections and requests served at once per listener:
past it a request is answered 503 at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from typing import Callable

import uvicorn

from appliance.net.listener import BindError, bind
from appliance.net.tls import TLS12_CIPHERS

log = logging.getLogger("kotakpos.web")

MAX_CLIENTS = 64         # connections and requests served at once per listener
KEEP_ALIVE = 15          # seconds an idle kept-alive connection stays open
STOP_GRACE = 3           # seconds requests in flight may take to finish at stop
START_TIMEOUT = 10.0     # seconds the listeners may take to come up


def _following_context(tls: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """A server context that hands each handshake to ``tls()`` as it is at that moment.

    OpenSSL takes the certificate from the context swapped in, but the protocol versions,
    ciphers and options from the one the handshake began with: those are ``tls()``'s too.
    """
    current = tls()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = current.minimum_version
    context.set_ciphers(TLS12_CIPHERS)
    context.options = current.options

    def use_current(connection, server_name, _context):
        # Called for every ClientHello, with or without SNI (server_name is then None).
        connection.context = tls()

    context.sni_callback = use_current
    return context


class WebListener:
    """The HTTP and HTTPS servers on every listen address (no HTTPS when ``https_port`` is None).

    ``http_app`` and ``https_app`` are the ASGI applications (``appliance.web.app``);
    ``start()`` raises BindError (naming the port and the fix) if a port is taken.
    """

    def __init__(self, listen: list[str], http_port: int, https_port: int | None,
                 tls: Callable[[], ssl.SSLContext], http_app, https_app):
        self._plan = [(host, port, secure) for host in listen
                      for port, secure in ((http_port, False), (https_port, True)) if port is not None]
        self._tls = tls
        self._apps = {False: http_app, True: https_app}
        self.sockets: dict[bool, list[socket.socket]] = {False: [], True: []}
        self._servers: list[tuple[uvicorn.Server, list[socket.socket]]] = []   # each with its sockets
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self) -> None:
        try:
            for host, port, secure in self._plan:
                for sock in bind(host, port, "https" if secure else "http"):
                    sock.setblocking(False)
                    self.sockets[secure].append(sock)
        except BindError:
            self.stop()
            raise
        for secure, sockets in self.sockets.items():
            if not sockets:
                continue
            config = uvicorn.Config(
                self._apps[secure], lifespan="off", loop="asyncio", http="h11", ws="none", interface="asgi3",
                limit_concurrency=MAX_CLIENTS, timeout_keep_alive=KEEP_ALIVE,
                timeout_graceful_shutdown=STOP_GRACE, server_header=False, access_log=False,
                log_config=None, log_level="warning",  # our log has the listeners; uvicorn's only its problems
                proxy_headers=False,  # no proxy in front: the peer address is the client's
                ssl_context_factory=(lambda _config, _default: _following_context(self._tls)) if secure else None)
            self._servers.append((uvicorn.Server(config), sockets))
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)
        self._thread.start()
        self._wait_started()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve_all())
        except BaseException as e:  # SystemExit too: uvicorn exits when it cannot start
            self._failure = e
            log.error("the web listener stopped: %r", e)

    async def _serve_all(self) -> None:
        await asyncio.gather(*(server.serve(sockets=sockets) for server, sockets in self._servers))

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(server.started for server, _ in self._servers):
            if self._failure is not None or not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise OSError(f"the web listener did not start: {self._failure!r}")
            time.sleep(0.01)

    def port(self, scheme: str) -> int:
        """The bound port of the first HTTP or HTTPS socket (for tests on port 0)."""
        return self.sockets[scheme == "https"][0].getsockname()[1]

    def stop(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_GRACE + 5)
            self._thread = None
        for sockets in self.sockets.values():
            for sock in sockets:
                sock.close()
            sockets.clear()
        self._servers = []
