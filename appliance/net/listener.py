"""Listeners and the thread-per-connection server.

Each listener owns a bound socket and an accept thread. Every accepted client gets its
own thread (small stack) running the protocol's session class, for as long as it stays
connected. A thread whose session ended waits a while for the next connection instead of
ending (``IDLE_THREAD_SECONDS``, at most ``IDLE_THREADS`` of them): starting a thread
costs the accept thread a wait for it to run, and a new connection per message (the
usual MTA's way) would pay that every message. The server enforces the
connection limits before a session starts, answering with the protocol's own "too busy"
reply, and on shutdown ends sessions between commands first and the rest after a grace
period. The limits count the connections of every worker process: the session registry
takes each slot in its shared table (``registry``), so N workers admit no more than one.
The accept thread checks only this process's own count (in memory: a flood is refused
without a thread); the connection's thread then takes the server-wide slot, so accepting
never waits for the shared table.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import logging
import os
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass

from appliance.net.addresses import is_loopback, plain_ip
from appliance.net.conn import Connection, ConnectionClosed, IdleTimeout
from appliance.net.registry import SessionRegistry

log = logging.getLogger("kotakpos.net")

THREAD_STACK_SIZE = 512 * 1024
# Two glibc malloc habits cost a thread-per-connection server dearly; a thousand idle IMAP
# clients needed three times the memory until both were set:
# - each new thread gets its own malloc arena (up to 8 per core), each keeping what its
#   threads once used: two arenas serve us just as fast;
# - after a big block (scrypt's 16 MiB at login) is given back, glibc raises its mmap
#   threshold and later big blocks come from the arenas, where they stay resident after
#   free. A fixed threshold keeps big blocks in mmap, returned to the system at once.
MALLOC_ARENAS = 2
MALLOC_MMAP_THRESHOLD = 128 * 1024
M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3  # glibc's mallopt parameter numbers
# A third habit has no mallopt: each thread keeps the last 7 blocks it freed of every size up
# to 1 KiB for its own next allocations, held back from the heap the other threads share. A
# session's thread fills that cache while it logs in and selects (SQLite statements on the
# store and the runtime database), then idles for hours: measured, 60 KiB more per idle IMAP
# client with the cache than without. Only an environment variable read at a process's start
# turns it off (appliance/launch.py sets it for ``serve``); the cache only sizes up to 128 or
# 512 bytes saved nothing.
# Python's cycle collector runs after every 700 new objects by default: a FETCH of 10,000
# messages makes tens of thousands of short-lived tuples and spent a tenth of its time there.
GC_YOUNG_THRESHOLD = 20_000
# A thread whose session ended waits this long for the next connection, and at most this
# many wait at once; past that they end. Enough for a burst of new connections per
# message; an idle thread costs only its touched stack pages.
IDLE_THREAD_SECONDS = 30.0
IDLE_THREADS = 64


def tune_runtime() -> None:
    """Set the malloc limits and the collector threshold above (malloc: glibc only).

    glibc fixes the arena cap when a second thread first allocates, so this must run
    before the server starts any thread.
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded, the C library's among them
        libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)
        libc.mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass  # not glibc


class BindError(Exception):
    """A port that cannot be bound; the message names the port, the reason and the fix."""


@dataclass
class Listener:
    name: str                  # smtp, submission, smtps, pop3, pop3s, imap, imaps, managesieve
    session_class: type        # called as session_class(conn, ctx, name); has BUSY_REPLY
    implicit_tls: bool
    sockets: list
    addresses: list            # (host, port) actually bound, for the ready line and the admin API
    shared: bool = False       # the sockets are a supervisor's, accepted on by every worker process

    @property
    def port(self) -> int:
        return self.addresses[0][1]


def bind(host: str, port: int, name: str) -> list[socket.socket]:
    """Bind ``host:port`` ("" = every address, dual-stack when the box has IPv6)."""
    try:
        if host == "":
            try:
                sock = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=512)
            except (OSError, ValueError) as e:
                if getattr(e, "errno", None) in (errno.EACCES, errno.EADDRINUSE):
                    raise
                sock = socket.create_server(("0.0.0.0", port), backlog=512)
            return [sock]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return [socket.create_server((host, port), family=family, backlog=512)]
    except OSError as e:
        where = f"{host or '*'}:{port}"
        if e.errno == errno.EACCES:
            hint = ("ports below 1024 need root or the CAP_NET_BIND_SERVICE capability "
                    "(the systemd unit grants it); or run with --port-offset 10000")
        elif e.errno == errno.EADDRINUSE:
            hint = "another program (another mail server?) uses it; stop it, or run with --port-offset 10000"
        elif e.errno == errno.EADDRNOTAVAIL:
            hint = "this machine has no such address; check --listen"
        else:
            hint = "check --listen and --port-offset"
        raise BindError(f"cannot listen on {where} for {name}: {e.strerror}; {hint}") from None


class ConnectionServer:
    def __init__(self, ctx, registry: SessionRegistry, tls_source, max_connections: int,
                 max_per_ip: int, exempt_from_ip_limit):
        self.ctx = ctx
        self.registry = registry
        self.tls_source = tls_source
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.exempt_from_ip_limit = exempt_from_ip_limit
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._held = 0                             # connections this process holds (admitted or being admitted)
        self._held_per_ip: dict[str, int] = {}
        self._threads: list[threading.Thread] = []
        self._idle_threads = 0                     # session threads waiting in _next_connection (under _lock)
        self._handoff: queue.SimpleQueue = queue.SimpleQueue()  # accepted connections for them; None: end
        self._stopping = False
        # Made by start(), written once by stop() and never read: readable from then on, it
        # wakes every TLS session waiting for a command (Connection.wait_for_client).
        self._stop_read = self._stop_write = -1

    def add(self, name: str, hosts: list[str], port: int, session_class: type, implicit_tls: bool) -> Listener:
        sockets = []
        try:
            for host in hosts:
                sockets.extend(bind(host, port, name))
        except BindError:
            for s in sockets:
                s.close()
            raise
        addresses = [s.getsockname()[:2] for s in sockets]
        listener = Listener(name, session_class, implicit_tls, sockets, addresses)
        self.listeners.append(listener)
        return listener

    def adopt(self, name: str, sockets: list[socket.socket], session_class: type, implicit_tls: bool) -> Listener:
        """Serve on listening sockets bound by a supervisor, which other worker processes accept on too."""
        for sock in sockets:
            # Every worker waits in select() and then tries accept(): the one that loses the
            # race for a client must not block (O_NONBLOCK is shared by the processes anyway).
            sock.setblocking(False)
        listener = Listener(name, session_class, implicit_tls, sockets, [s.getsockname()[:2] for s in sockets],
                            shared=True)
        self.listeners.append(listener)
        return listener

    def start(self) -> None:
        self._stop_read, self._stop_write = os.pipe()
        self.registry.start()
        threading.stack_size(THREAD_STACK_SIZE)
        for listener in self.listeners:
            for sock in listener.sockets:
                t = threading.Thread(target=self._accept_loop, args=(listener, sock), name=f"accept-{listener.name}",
                                     daemon=True)
                t.start()
                self._threads.append(t)

    def _accept_loop(self, listener: Listener, sock: socket.socket) -> None:
        while True:
            try:
                if listener.shared:
                    # Shutting a shared socket down would stop every worker's listening: stop()
                    # wakes this thread through the stop pipe instead.
                    if self._stop_read in select.select([sock, self._stop_read], [], [])[0]:
                        return
                    try:
                        client, address = sock.accept()
                    except (BlockingIOError, InterruptedError):
                        continue  # another worker took it
                    client.setblocking(True)
                else:
                    client, address = sock.accept()
            except OSError:
                if self._stopping:
                    return  # stop() shut the socket to wake us
                time.sleep(0.05)  # e.g. EMFILE: breathe instead of spinning
                continue
            if self._stopping:  # came in as the server stopped: nobody would serve it
                client.close()
                return
            ip = plain_ip(address[0])
            limit = None if self.exempt_from_ip_limit(ip) else self.max_per_ip
            # This process alone at a limit: refused here, without a thread or the shared slots.
            if not self._hold(ip, limit):
                self._refuse(client, listener)
                continue
            accepted = (listener, client, ip, address[1], limit)
            with self._lock:
                waiting = self._idle_threads > 0
                if waiting:
                    self._idle_threads -= 1
                    self._handoff.put(accepted)
            if waiting:
                continue
            try:
                threading.Thread(target=self._session_thread, args=(accepted,), name=f"{listener.name}-new",
                                 daemon=True).start()
            except RuntimeError:  # cannot start a thread: treat as too busy
                self._let_go(ip)
                self._refuse(client, listener)

    def _session_thread(self, accepted: tuple | None) -> None:
        """Serve one connection, then the next ones the accept threads hand over, until
        none comes for IDLE_THREAD_SECONDS (or IDLE_THREADS others already wait)."""
        while accepted is not None:
            self._serve(*accepted)
            accepted = self._next_connection()

    def _next_connection(self) -> tuple | None:
        with self._lock:
            if self._stopping or self._idle_threads >= IDLE_THREADS:
                return None
            self._idle_threads += 1
        threading.current_thread().name = "session-idle"
        try:
            return self._handoff.get(timeout=IDLE_THREAD_SECONDS)
        except queue.Empty:
            with self._lock:
                # An accept thread may have counted on us just as the wait ran out: it has
                # then put the connection in already, and taken us off the count.
                try:
                    return self._handoff.get_nowait()
                except queue.Empty:
                    self._idle_threads -= 1
                    return None

    def _hold(self, ip: str, limit: int | None) -> bool:
        """Count a connection in this process if its own connections leave room for it."""
        with self._lock:
            count = self._held_per_ip.get(ip, 0)
            if self._held >= self.max_connections or (limit is not None and count >= limit):
                return False
            self._held += 1
            self._held_per_ip[ip] = count + 1
            return True

    def _let_go(self, ip: str) -> None:
        with self._lock:
            self._held -= 1
            left = self._held_per_ip.get(ip, 1) - 1
            if left:
                self._held_per_ip[ip] = left
            else:
                self._held_per_ip.pop(ip, None)

    @property
    def load(self) -> float:
        """Connections in use server-wide as a share of max_connections (0.0-1.0).

        Sessions read it before each wait for the client, so a protocol can shorten its
        timeouts while connections pile up (SMTP's stress mode, like Postfix's).
        """
        return self.registry.server_total / self.max_connections

    def _admit(self, listener: Listener, ip: str, port: int, limit: int | None):
        """The new session's SessionInfo if the server-wide limits allow it, else None."""
        try:
            return self.registry.admit(listener.name, ip, port, listener.port, self.max_connections, limit)
        except Exception:  # the shared table failed (e.g. the disk is full): too busy, not dead
            log.exception("cannot admit a %s connection", listener.name)
            return None

    def _refuse(self, client: socket.socket, listener: Listener) -> None:
        log.info("refused %s connection: too many connections", listener.name)
        try:
            client.settimeout(1.0)
            if not listener.implicit_tls:
                client.sendall(listener.session_class.BUSY_REPLY)
        except OSError:
            pass
        finally:
            client.close()

    def _serve(self, listener: Listener, client: socket.socket, ip: str, port: int, limit: int | None) -> None:
        """One connection's thread: take a server-wide slot (here, so that the accept thread
        never waits for the shared table), then run the session and free the slot."""
        try:
            info = self._admit(listener, ip, port, limit)
            if info is None:
                self._refuse(client, listener)
                return
            threading.current_thread().name = f"{listener.name}-{info.id}"
            try:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = Connection(client, info, self.tls_source, is_loopback(ip))
            except OSError:  # the client left already
                client.close()
                self.registry.remove(info)
                return
            conn.server_load = lambda: self.load
            conn.stop_fd = self._stop_read
            self._run(listener, conn)
        finally:
            self._let_go(ip)

    def _run(self, listener: Listener, conn: Connection) -> None:
        info = conn.info
        self.registry.add(info, conn)
        log.info("session %d open %s from %s:%d", info.id, listener.name, info.peer_ip, info.peer_port)
        try:
            if self._stopping:
                return  # admitted as the server stopped: nobody would end it
            if listener.implicit_tls:
                conn.start_tls()
            listener.session_class(conn, self.ctx, listener.name).run()
        except (ConnectionClosed, IdleTimeout, OSError):
            pass
        except Exception:
            log.exception("session %d (%s) failed", info.id, listener.name)
        finally:
            conn.close()
            try:
                self.registry.remove(info)
            except Exception:
                log.exception("session %d: cannot free its slot", info.id)
            log.info("session %d closed %s user=%s in=%d out=%d", info.id, listener.name, info.user or "-",
                     info.bytes_in, info.bytes_out)

    def stop(self, grace: float) -> None:
        """Stop accepting; end idle sessions now and busy ones when done or after ``grace`` seconds."""
        if self._stopping or self._stop_write < 0:
            return  # stopped already, or never started
        self._stopping = True
        for conn in self.registry.connections():
            conn.stopping = True
        os.write(self._stop_write, b"x")
        # Shutting a listening socket wakes its thread blocked in accept(); closing it would
        # not, and a client arriving then would be accepted on a closed socket.
        for listener in self.listeners:
            if listener.shared:
                continue
            for sock in listener.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(1.0)
        with self._lock:  # the accept threads have ended: nothing is handed over any more
            idle, self._idle_threads = self._idle_threads, 0
        for _ in range(idle):
            self._handoff.put(None)
        for listener in self.listeners:
            for sock in listener.sockets:
                sock.close()
        deadline = time.monotonic() + grace
        while self.registry.count() and time.monotonic() < deadline:
            for conn in self.registry.connections():
                conn.stopping = True
                if conn.waiting_for_command:
                    conn.stop_reading()  # the session says goodbye (IMAP BYE, SMTP 421, POP3 -ERR)
            time.sleep(0.05)
        for conn in self.registry.connections():
            conn.abort()
        end = time.monotonic() + 2.0
        while self.registry.count() and time.monotonic() < end:
            time.sleep(0.02)
        self.registry.stop()
        if not self.registry.count():  # a session still ending may yet poll the pipe
            os.close(self._stop_read)
            os.close(self._stop_write)
