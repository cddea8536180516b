"""POP3 protocol errors: exceptions that know the reply line the client gets.

Three kinds, as in the other protocol packages:

- `UserError`: the client asked for something that cannot be done right now
  (no such message, message already deleted). Answered with -ERR and not
  counted against the session's error limit: a client may legitimately ask
  for a message another session removed.
- `CommandSyntaxError`: an unknown verb, a bad argument, a verb in the wrong
  state. Answered with -ERR and counted; too many close the session.
- `AuthFailed`: refused credentials, -ERR [AUTH]; counted, so endless
  guessing ends the session (the delays themselves come from appliance.auth).
- `ServerError`: our fault (store failure). Answered with
  -ERR [SYS/TEMP]; the session logs the traceback, the client never sees
  the details.
"""

from __future__ import annotations

from appliance.pop3 import replies


class Pop3Error(Exception):
    """Base class: `reply` is the complete reply line, without CRLF."""

    counts_as_error = False  # True when it counts against the error limit

    def __init__(self, reply: bytes):
        super().__init__(reply)
        self.reply = reply


class UserError(Pop3Error):
    """A well-formed request that cannot be fulfilled (-ERR, not counted)."""


class CommandSyntaxError(Pop3Error):
    """An unknown verb, bad arguments or a verb not legal in this state."""

    counts_as_error = True


class AuthFailed(Pop3Error):
    """Credentials were refused; counted, so endless guessing ends the session."""

    counts_as_error = True

    def __init__(self, reply: bytes = replies.ERR_AUTH_FAILED):
        super().__init__(reply)


class ServerError(Pop3Error):
    """An internal failure; the client only learns that it is temporary."""

    def __init__(self, reply: bytes = replies.ERR_SYS_TEMP):
        super().__init__(reply)
