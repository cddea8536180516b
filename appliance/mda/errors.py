"""What the MDA tells its caller when the filters refuse a message.

The MDA runs below the protocols: it raises ``Refused`` with the filter's reply parts, and the
SMTP session (the one caller that can still refuse) turns them into its own reply.
"""

from __future__ import annotations


class Refused(Exception):
    """A filter refused the whole message: nothing was written.

    ``code``, ``status`` and ``text`` are the reply the sender is to get (e.g. 554, "5.7.0",
    "message refused"); ``reason`` is for the log only, never for the client.
    """

    def __init__(self, code: int, status: str, text: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.status = status
        self.text = text
        self.reason = reason
