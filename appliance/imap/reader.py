"""Reading one complete IMAP command, literals included, from a Connection.

RFC 3501 §7.5 / RFC 7888: a line ending in ``{n}`` announces a synchronising
literal — we check ``n`` against the current limit *before* sending the "+"
continuation, so an oversize literal is refused without being transferred.
``{n+}`` (LITERAL+) is already on its way: we read it inline, and if it is too
big the stream cannot be framed any more, which the session handles by
answering and closing.
"""

from __future__ import annotations

import re

from appliance.imap import replies
from appliance.imap.errors import CommandTooLong, LiteralTooBig
from appliance.imap.parse import split_tag
from appliance.net.conn import LineTooLong

_LITERAL_AT_END = re.compile(rb"\{(\d{1,20})(\+?)\}\r?\n\Z")


class CommandReader:
    """Assembles commands from ``conn`` within the line and command bounds."""

    def __init__(self, conn, line_limit: int, command_limit: int) -> None:
        self.conn = conn
        self.line_limit = line_limit  # one line without its literals
        self.command_limit = command_limit  # the whole command, literals excluded

    def read(self, literal_limit: int) -> bytes:
        """Return the next command's bytes (CRLF-terminated, literals inlined).

        Raises LiteralTooBig, CommandTooLong (a line too long included: its tag is
        taken from its start), or the Connection's own errors (ConnectionClosed,
        IdleTimeout).
        """
        parts: list[bytes] = []
        text_size = 0
        literal_total = 0
        tag = None
        while True:
            # Only the first line is "between commands", where shutdown may end us.
            try:
                line = (self.conn.read_line(self.line_limit) if parts
                        else self.conn.read_command_line(self.line_limit))
            except LineTooLong as exc:
                raise CommandTooLong(tag if parts else split_tag(exc.head)) from exc
            if tag is None:
                tag = split_tag(line)
            parts.append(line)
            text_size += len(line)
            if text_size > self.command_limit:
                raise CommandTooLong(tag)
            match = _LITERAL_AT_END.search(line)
            if not match:
                return b"".join(parts)
            size = int(match.group(1))
            synchronising = not match.group(2)
            # All literals of one command share the limit, so a command cannot
            # smuggle more than one message worth of data in many pieces.
            if literal_total + size > literal_limit:
                raise LiteralTooBig(tag, size, synchronising)
            literal_total += size
            if synchronising:
                self.conn.write(replies.CONTINUE_LITERAL)
                self.conn.flush()
            parts.append(self.conn.read_exact(size))
