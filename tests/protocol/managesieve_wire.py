"""A ManageSieve transcript client: ``c.transact("PUTSCRIPT ...", R.OK_STORED)``.

``expect`` takes a named response from ``appliance.managesieve.replies`` (compared byte
for byte) or an fnmatch pattern such as ``"NO *"``. ``until_ok`` reads the lines of a
multi-line answer up to its final response.
"""

from __future__ import annotations

import base64
import fnmatch
import re
import socket

from appliance.managesieve import replies

HOSTNAME = "mail.example.org"


class SieveWire:
    def __init__(self, sock: socket.socket, server):
        self.sock = sock
        self.server = server
        self.buf = b""

    @classmethod
    def open(cls, server, timeout: float = 10.0) -> "SieveWire":
        wire = cls(server.connect("managesieve", timeout=timeout), server)
        wire.greeting = wire.until_ok()
        return wire

    @classmethod
    def tls(cls, server) -> "SieveWire":
        wire = cls.open(server)
        wire.transact("STARTTLS", replies.OK_BEGIN_TLS)
        wire.starttls()
        wire.capabilities = wire.until_ok()
        return wire

    @classmethod
    def logged_in(cls, server, address: str, password: str) -> "SieveWire":
        wire = cls.tls(server)
        wire.transact(f'AUTHENTICATE "PLAIN" "{plain_token(address, password)}"', replies.OK_LOGGED_IN)
        return wire

    def starttls(self) -> None:
        assert not self.buf, f"bytes before the handshake: {self.buf!r}"
        self.sock = self.server.tls_context().wrap_socket(self.sock, server_hostname=HOSTNAME)

    # -- sending ------------------------------------------------------------------

    def send(self, line: str | bytes) -> None:
        data = line.encode("utf-8") if isinstance(line, str) else line
        self.sock.sendall(data + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    # -- receiving ----------------------------------------------------------------

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed; unread {self.buf!r}")
        self.buf += chunk

    def line(self) -> bytes:
        """The next line without its CRLF; a literal ``{n}`` at its end is read into it."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        literal = re.search(rb"\{(\d+)\}\Z", line)
        if literal:
            size = int(literal.group(1))
            while len(self.buf) < size:
                self._fill()
            line, self.buf = line + b"\r\n" + self.buf[:size], self.buf[size:]
            return line + self.line()
        return line

    def expect(self, want: bytes | str) -> bytes:
        got = self.line()
        if isinstance(want, bytes):
            assert got == want, f"expected {want!r}, got {got!r}"
        else:
            assert fnmatch.fnmatchcase(got.decode("utf-8", "replace"), want), f"expected {want!r}, got {got!r}"
        return got

    def transact(self, command: str | bytes, want: bytes | str) -> bytes:
        self.send(command)
        return self.expect(want)

    def until_ok(self) -> list[bytes]:
        """The lines of a multi-line answer before its final OK (which must come)."""
        lines = []
        while True:
            line = self.line()
            if line.startswith((b"OK", b"NO", b"BYE")):
                assert line.startswith(b"OK"), f"expected OK, got {line!r} after {lines!r}"
                return lines
            lines.append(line)

    def closed(self) -> bool:
        """The server closed the connection (after whatever it had still to say)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True


def plain_token(address: str, password: str) -> str:
    return base64.b64encode(f"\0{address}\0{password}".encode()).decode()


def literal(data: str | bytes, sync: bool = False) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return b"{%d%s}\r\n" % (len(raw), b"" if sync else b"+") + raw
