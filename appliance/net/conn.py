"""One client connection: a buffered reader with hard limits, a buffered writer, TLS upgrade.

A ``Connection`` is owned by the one thread serving that client. Reads never buffer more
than the caller's limit; writes are collected and sent by ``flush()`` so a pipelined batch
of replies leaves in one packet.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import threading
import time
from contextlib import contextmanager

from appliance.net.registry import SessionInfo

RECV_SIZE = 65536
# A slow reader gets at least this long to take each block of a reply.
WRITE_TIMEOUT_MIN = 30.0


class ConnectionClosed(Exception):
    """The peer went away (or the server closed the connection)."""


class IdleTimeout(Exception):
    """The peer sent nothing for ``conn.timeout`` seconds."""


class LineTooLong(Exception):
    """A line passed the caller's limit; the rest of it has been read and dropped.

    ``head`` keeps the line's first bytes: an IMAP tag stands there, and the answer needs it.
    """

    HEAD = 256

    def __init__(self, head: bytes = b"") -> None:
        super().__init__("line too long")
        self.head = head


class Connection:
    def __init__(self, sock: socket.socket, info: SessionInfo, tls_context_source, is_loopback: bool):
        self.sock = sock
        self.info = info
        self.peer_ip = info.peer_ip
        self.peer_port = info.peer_port
        self.local_port = info.local_port
        self.is_loopback = is_loopback
        self.is_tls = False
        self.timeout = 300.0            # seconds of silence before IdleTimeout; sessions set their own
        self.stopping = False           # set when the server shuts down: read_command_line then ends the session
        self._tls_context_source = tls_context_source
        self._sock_timeout: float | None = None  # the read bound (TLS: the one bound) self.sock was last given
        self._send_timeout: float | None = None  # the write bound a plain self.sock was last given
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._waiting_for_command = False
        self._lock = threading.Lock()   # guards close() against a concurrent kick
        self.on_command = None          # set by the registry: tells live views a command was noted
        self.server_load = lambda: 0.0  # set by the ConnectionServer: share of max_connections in use (stress mode)
        self.stop_fd: int | None = None  # set by the ConnectionServer: readable once the server stops (TLS waits poll it)

    # -- reading -----------------------------------------------------------------------

    def _set_sock_timeouts(self, writing: bool) -> None:
        """Bound the next read by ``timeout``, the next write by at least WRITE_TIMEOUT_MIN.

        A plain socket stays blocking and gets both bounds from the kernel (SO_RCVTIMEO,
        SO_SNDTIMEO): on a socket with a Python timeout every recv and send is preceded
        by a poll, and each of those system calls gives up the GIL and must win it back
        from the other sessions. TLS keeps Python's timeout, which its reads need. Either
        way the socket is touched only when the bound of what comes next changes: a read
        sets only the read bound, a write only the write bound, so SMTP's shorter DATA
        timeout costs two system calls per message, not four.
        """
        if self.is_tls:
            seconds = max(self.timeout, WRITE_TIMEOUT_MIN) if writing else self.timeout
            if seconds != self._sock_timeout:
                self.sock.settimeout(seconds)
                self._sock_timeout = seconds
            return
        if writing:
            option, seconds = socket.SO_SNDTIMEO, max(self.timeout, WRITE_TIMEOUT_MIN)
            if seconds == self._send_timeout:
                return
            self._send_timeout = seconds
        else:
            option, seconds = socket.SO_RCVTIMEO, self.timeout
            if seconds == self._sock_timeout:
                return
            self._sock_timeout = seconds
        seconds = max(seconds, 0.001)  # a zero timeval would mean "never"
        self.sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000)))

    def _fill(self) -> None:
        if self._waiting_for_command and self.is_tls and self.stop_fd is not None:
            self.wait_for_client()
        self._set_sock_timeouts(writing=False)
        try:
            data = self.sock.recv(RECV_SIZE)
        except (socket.timeout, TimeoutError, BlockingIOError):  # BlockingIOError: SO_RCVTIMEO passed
            raise IdleTimeout() from None
        except ssl.SSLError as e:
            raise ConnectionClosed(str(e)) from None
        except OSError as e:
            raise ConnectionClosed(str(e)) from None
        if not data:
            raise ConnectionClosed()
        self.info.bytes_in += len(data)
        self._buf += data

    def wait_for_client(self, also: int | None = None) -> bool:
        """Wait until the client has sent something (True) or ``also`` is readable (False).

        Raises IdleTimeout after ``timeout`` seconds of silence, and ConnectionClosed once
        the server stops. A plain session is woken for shutdown by shutting its socket's
        read side (see ``stop_reading``); OpenSSL takes such an end as an attack and would
        refuse the goodbye after it, so a TLS session watches the server's stop pipe as
        well. poll, not select: with a thousand idlers descriptor numbers pass select's
        1024 limit.
        """
        if self.tls_pending():
            return True
        watched = [fd for fd in (self.sock.fileno(), also, self.stop_fd if self.is_tls else None) if fd is not None]
        poller = select.poll()
        for fd in watched:
            poller.register(fd, select.POLLIN)
        ready = {fd for fd, _ in poller.poll(self.timeout * 1000)}
        if self.is_tls and self.stop_fd in ready:
            self.stopping = True
            raise ConnectionClosed("server stopping")
        if not ready:
            raise IdleTimeout()
        return self.sock.fileno() in ready

    def read_line(self, limit: int) -> bytes:
        """One line with its terminator (LF or CRLF), at most ``limit`` bytes long.

        Raises LineTooLong after reading and dropping the rest of an overlong line.
        """
        scanned = 0
        while True:
            end = self._buf.find(b"\n", scanned)
            if end >= 0:
                if end + 1 > limit:
                    head = bytes(self._buf[:LineTooLong.HEAD])
                    del self._buf[:end + 1]
                    raise LineTooLong(head)
                line = bytes(self._buf[:end + 1])
                del self._buf[:end + 1]
                return line
            if len(self._buf) > limit:
                head = bytes(self._buf[:LineTooLong.HEAD])
                self._buf.clear()
                self._discard_rest_of_line()
                raise LineTooLong(head)
            scanned = len(self._buf)
            self._fill()

    def read_command_line(self, limit: int) -> bytes:
        """Like read_line, for the next command: a place where a stopping server may end the session."""
        if b"\n" in self._buf:
            return self.read_line(limit)
        # between_commands() without its generator: this runs once per command of every session.
        self._start_waiting()
        try:
            return self.read_line(limit)
        finally:
            self._waiting_for_command = False

    @contextmanager
    def between_commands(self):
        """Mark a wait in which the session holds no transaction (the next command, IMAP IDLE).

        A server that is stopping closes sessions waiting here at once instead of after
        its grace period, since nothing in flight can be cut in half.
        """
        self._start_waiting()
        try:
            yield
        finally:
            self._waiting_for_command = False

    def _start_waiting(self) -> None:
        if self.stopping:
            raise ConnectionClosed("server stopping")
        self._waiting_for_command = True

    def _discard_rest_of_line(self) -> None:
        while True:
            self._fill()
            end = self._buf.find(b"\n")
            if end >= 0:
                del self._buf[:end + 1]
                return
            self._buf.clear()

    def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def read_some(self) -> bytes:
        """Whatever is buffered, or the next chunk from the socket."""
        if not self._buf:
            self._fill()
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def unread(self, data: bytes) -> None:
        """Give back bytes taken by read_some that belong to what follows."""
        if data:
            self._buf[:0] = data

    def has_buffered_line(self) -> bool:
        return b"\n" in self._buf

    def tls_pending(self) -> bool:
        """TLS has decrypted bytes that poll() on the socket cannot see."""
        return self.is_tls and self.sock.pending() > 0

    def writable_now(self) -> bool:
        """The socket has room: a small write returns at once instead of waiting for the peer."""
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLOUT)
        return bool(poller.poll(0))

    # -- writing -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self._out.append(data)

    def pending_output(self) -> int:
        """Bytes written and not yet flushed."""
        return sum(map(len, self._out))

    def flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        self._set_sock_timeouts(writing=True)
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as e:
            raise ConnectionClosed(str(e)) from None
        self.info.bytes_out += len(data)

    # -- TLS ---------------------------------------------------------------------------

    def start_tls(self, handshake_timeout: float = 30.0) -> None:
        """Flush, drop every byte received before the handshake, and become a TLS server.

        Dropping the buffer is what stops STARTTLS command injection: nothing the client
        sent in plaintext after STARTTLS may be read as if it came over TLS.
        """
        self.flush()
        self._buf.clear()
        context: ssl.SSLContext = self._tls_context_source()
        self.sock.settimeout(handshake_timeout)
        self._sock_timeout = handshake_timeout
        try:
            self.sock = context.wrap_socket(self.sock, server_side=True)
        except (OSError, ssl.SSLError) as e:
            raise ConnectionClosed(f"TLS handshake failed: {e}") from None
        self.is_tls = True
        self.info.tls = self.sock.version() or "TLS"

    # -- lifecycle ---------------------------------------------------------------------

    def note_command(self, text: str) -> None:
        """Record the last command for the live views; callers remove secrets first."""
        self.info.last_command = text[:200]
        self.info.last_active = time.time()
        self.info.commands += 1
        if self.on_command is not None:
            self.on_command()

    @property
    def waiting_for_command(self) -> bool:
        return self._waiting_for_command and not self._buf

    def abort(self) -> None:
        """Cut the connection from another thread (kick, shutdown): the owner's read fails."""
        with self._lock:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop_reading(self) -> None:
        """Wake the owner waiting for a command so it can say goodbye (server stopping).

        A plain socket's read side is shut: the owner's read ends while writing still works.
        A TLS session wakes on the server's stop pipe instead (``wait_for_client``).
        """
        if self.is_tls:
            return
        with self._lock:
            try:
                self.sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            try:
                self.flush()
            except ConnectionClosed:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
