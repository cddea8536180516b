"""What the POP3 and ManageSieve transcript clients share: CRLF lines over one socket.

``expect`` takes a named reply of the protocol's ``replies`` module (compared byte for
byte) or an fnmatch pattern such as ``"+OK *"`` or ``"NO *"``.
"""

from __future__ import annotations

import fnmatch
import socket

HOSTNAME = "mail.example.org"  # the name in the test certificate


class LineWire:
    encoding = "latin-1"  # how a line is decoded before a pattern is matched against it

    def __init__(self, sock: socket.socket, server):
        self.sock = sock
        self.server = server
        self.buf = b""

    def starttls(self) -> None:
        assert not self.buf, f"bytes before the handshake: {self.buf!r}"
        self.sock = self.server.tls_context().wrap_socket(self.sock, server_hostname=HOSTNAME)

    # -- sending ------------------------------------------------------------------

    def send(self, line: str | bytes) -> None:
        data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
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
        """The next line without its CRLF."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def expect(self, want: bytes | str) -> bytes:
        got = self.line()
        if isinstance(want, bytes):
            assert got == want, f"expected {want!r}, got {got!r}"
        else:
            assert fnmatch.fnmatchcase(got.decode(self.encoding, "replace"), want), f"expected {want!r}, got {got!r}"
        return got

    def transact(self, command: str | bytes, want: bytes | str) -> bytes:
        self.send(command)
        return self.expect(want)

    def closed(self) -> bool:
        """True when the server has closed the connection with nothing more to say."""
        self.sock.settimeout(5)
        try:
            return self.buf == b"" and self.sock.recv(1) == b""
        except OSError:  # a reset, or TLS torn down without close_notify
            return True

    def close(self) -> None:
        self.sock.close()
