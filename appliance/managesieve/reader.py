"""Reading one complete ManageSieve command, literals inlined, from a Connection.

A line that ends in ``{n+}`` (or ``{n}``) announces n octets that follow at once, then the
rest of the command. Each literal is checked against the caller's limit before it is
read. One a little over the limit (up to ``drop_limit``) is read and dropped, so that the
session can answer NO (QUOTA/MAXSIZE) and go on, as a client that PUTs a too-big script
deserves; a bigger one cannot be framed at a reasonable cost, and the session ends.
"""

from __future__ import annotations

from appliance.managesieve.errors import CommandTooLong, LiteralTooBig
from appliance.managesieve.parse import LITERAL

# No verb takes more than two strings (RFC 5804 §2): more literals than that are not a command.
MAX_LITERALS = 2
_DROP_CHUNK = 65536


class CommandReader:
    """Assembles commands from ``conn`` within the line and literal bounds."""

    def __init__(self, conn, line_limit: int) -> None:
        self.conn = conn
        self.line_limit = line_limit  # one line, literals excluded

    def read(self, literal_limit: int, drop_limit: int, first: bytes | None = None) -> bytes:
        """The next command's bytes (CRLF-terminated, literals inlined).

        ``first``: its first line, when the caller has read it already. Raises
        LiteralTooBig, CommandTooLong, or the Connection's own errors (LineTooLong,
        ConnectionClosed, IdleTimeout).
        """
        line = first if first is not None else self.conn.read_command_line(self.line_limit)
        parts, literals, too_big = [], 0, None
        while True:
            parts.append(line)
            match = _literal_at_end(line)
            if match is None:
                break
            literals += 1
            if literals > MAX_LITERALS:
                raise CommandTooLong()
            size = int(match.group(1))
            if size > literal_limit:
                if size > drop_limit:
                    raise LiteralTooBig(size, framed=False)
                self._drop(size)
                too_big = size
            else:
                parts.append(self.conn.read_exact(size))
            line = self.conn.read_line(self.line_limit)
        if too_big is not None:
            raise LiteralTooBig(too_big, framed=True)
        return b"".join(parts)

    def _drop(self, size: int) -> None:
        while size:
            size -= len(self.conn.read_exact(min(size, _DROP_CHUNK)))


def _literal_at_end(line: bytes):
    start = line.rfind(b"{")
    return LITERAL.fullmatch(line, start) if start >= 0 else None
