"""IMAP protocol errors; each knows the response it turns into."""

from __future__ import annotations


class ImapError(Exception):
    """Base of errors answered to the client; ``text`` is safe to show."""

    status = b"NO"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code  # response code without brackets, e.g. "TRYCREATE"


class CommandSyntaxError(ImapError):
    """The command is malformed: answered BAD, the session continues."""

    status = b"BAD"


class UserError(ImapError):
    """The command is well-formed but cannot be done: answered NO."""

    status = b"NO"


class ServerError(ImapError):
    """Something broke on our side: NO [SERVERBUG], logged with a traceback."""

    status = b"NO"

    def __init__(self, text: str = "Internal error, try again later") -> None:
        super().__init__(text, "SERVERBUG")


class LiteralTooBig(Exception):
    """A client announced a literal above the current limit (raised by the reader).

    ``synchronising`` tells the session whether the client is waiting for our
    answer (``{n}``: answer NO and carry on) or already sending (``{n+}``: the
    rest of the stream cannot be framed, answer BAD and close; RFC 7888 §4).
    """

    def __init__(self, tag: bytes | None, size: int, synchronising: bool) -> None:
        super().__init__(f"literal of {size} octets")
        self.tag = tag
        self.size = size
        self.synchronising = synchronising


class CommandTooLong(Exception):
    """A command (line plus literals) grew past the line or command limit."""

    def __init__(self, tag: bytes | None) -> None:
        super().__init__("command too long")
        self.tag = tag
