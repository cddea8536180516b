"""A ManageSieve transcript client: ``c.transact("PUTSCRIPT ...", R.OK_STORED)``.

``expect`` takes a named response from ``appliance.managesieve.replies`` (compared byte
for byte) or an fnmatch pattern such as ``"NO *"`` (see ``line_wire``). ``until_ok`` reads
the lines of a multi-line answer up to its final response.
"""

from __future__ import annotations

import base64
import re

from appliance.managesieve import replies
from tests.protocol.line_wire import LineWire


class SieveWire(LineWire):
    encoding = "utf-8"  # RFC 5804 strings are UTF-8

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

    def line(self) -> bytes:
        """The next line without its CRLF; a literal ``{n}`` at its end is read into it."""
        line = super().line()
        literal = re.search(rb"\{(\d+)\}\Z", line)
        if literal:
            size = int(literal.group(1))
            while len(self.buf) < size:
                self._fill()
            line, self.buf = line + b"\r\n" + self.buf[:size], self.buf[size:]
            return line + self.line()
        return line

    def until_ok(self) -> list[bytes]:
        """The lines of a multi-line answer before its final OK (which must come)."""
        lines = []
        while True:
            line = self.line()
            if line.startswith((b"OK", b"NO", b"BYE")):
                assert line.startswith(b"OK"), f"expected OK, got {line!r} after {lines!r}"
                return lines
            lines.append(line)


def plain_token(address: str, password: str) -> str:
    return base64.b64encode(f"\0{address}\0{password}".encode()).decode()


def literal(data: str | bytes, sync: bool = False) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return b"{%d%s}\r\n" % (len(raw), b"" if sync else b"+") + raw
