"""ManageSieve errors: exceptions that know the response the client gets (RFC 5804 §1.3).

- `UserError`: a well-formed request that cannot be done (no such script, the active one,
  over quota). NO, not counted.
- `CommandSyntaxError`: an unknown verb, bad arguments, a verb in the wrong state. NO,
  counted; too many end the session with BYE.
- `AuthFailed`: refused credentials; counted, so endless guessing ends the session (the
  delays themselves come from appliance.auth).
- `ServerError`: our fault (a store failure). NO (TRYLATER); the traceback goes to the
  log, never to the client.
"""

from __future__ import annotations

from appliance.managesieve import replies


class ManageSieveError(Exception):
    """Base class: `reply` is the complete response line, without CRLF."""

    counts_as_error = False  # True when it counts against the session's error limit

    def __init__(self, reply: bytes):
        super().__init__(reply)
        self.reply = reply


class UserError(ManageSieveError):
    """A well-formed request that cannot be fulfilled (NO, not counted)."""


class CommandSyntaxError(ManageSieveError):
    """An unknown verb, bad arguments or a verb not legal in this state."""

    counts_as_error = True


class AuthFailed(ManageSieveError):
    """Credentials were refused; counted, so endless guessing ends the session."""

    counts_as_error = True

    def __init__(self, reply: bytes = replies.NO_AUTH_FAILED):
        super().__init__(reply)


class ServerError(ManageSieveError):
    """An internal failure; the client only learns that it may try again later."""

    def __init__(self, reply: bytes = replies.NO_TRYLATER):
        super().__init__(reply)


class LiteralTooBig(Exception):
    """A literal over the current limit. ``framed``: it was read and dropped, so the
    session can answer and go on; otherwise the stream cannot be framed any more."""

    def __init__(self, size: int, framed: bool):
        super().__init__(size)
        self.size = size
        self.framed = framed


class CommandTooLong(Exception):
    """A command of more lines (literals) than any verb takes: the session answers BYE and
    closes, as the rest of the stream cannot be trusted to be commands."""
