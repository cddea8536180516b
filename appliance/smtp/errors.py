"""Exceptions that carry the SMTP reply the client gets.

Three kinds, kept apart because they are logged differently:
``UserError`` is a refusal the client earned (4xx/5xx, logged at info),
``CommandSyntaxError`` is a malformed command (500/501), ``ServerError`` is our
fault (451, logged with a traceback). The reply text is always generic; details
go to ``log_detail`` for the log only.
"""

from __future__ import annotations

from appliance.smtp.replies import Reply


class SmtpError(Exception):
    """Base: a command failed and the client gets ``reply``.

    ``close`` asks the session to close the connection after the reply
    (used with 421, and when the byte stream can no longer be framed).
    """

    def __init__(self, reply: Reply, log_detail: str = "", *, close: bool = False):
        super().__init__(log_detail or reply.text)
        self.reply = reply  # what the client sees
        self.log_detail = log_detail  # what the log sees, never sent to the client
        self.close = close  # session closes after writing the reply


class UserError(SmtpError):
    """Policy refusal or wrong sequence: 4xx/5xx, counted as a client error."""


class CommandSyntaxError(SmtpError):
    """The command could not be parsed: 500/501/555."""


class ServerError(SmtpError):
    """Something failed on our side (store, filter): 451, the client may retry."""
