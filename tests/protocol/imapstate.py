"""What one IMAP client was told of its selected mailbox, checked line by line.

Modelled on the state tracking of Dovecot's imaptest: every untagged response must
agree with what the client heard before. EXISTS never shrinks except by EXPUNGE,
RECENT never exceeds EXISTS, EXPUNGE and FETCH name only sequence numbers the client
knows, a sequence number keeps its UID, and UIDs ascend with sequence numbers.
"""

from __future__ import annotations

import re

_NUMBERED = re.compile(rb"\* (\d+) (EXISTS|RECENT|EXPUNGE|FETCH)\b")
_UID = re.compile(rb"\bUID (\d+)")


class MailboxView:
    def __init__(self) -> None:
        self.uids: list[int | None] | None = None  # by sequence number - 1; None until SELECT tells EXISTS
        self.recent = 0
        self.problems: list[str] = []

    @property
    def exists(self) -> int:
        return len(self.uids or ())

    def selecting(self) -> None:
        """A SELECT/EXAMINE starts: everything known is forgotten."""
        self.uids = None
        self.recent = 0

    def closed(self) -> None:
        self.uids = None

    def feed(self, line: bytes) -> None:
        match = _NUMBERED.match(line)
        if not match:
            return
        number, kind = int(match.group(1)), match.group(2)
        if kind == b"EXISTS":
            if self.uids is not None and number < len(self.uids):
                self._problem(f"EXISTS went from {len(self.uids)} down to {number} without EXPUNGE", line)
                return
            self.uids = (self.uids or []) + [None] * (number - len(self.uids or ()))
        elif self.uids is None:
            self._problem("a numbered response before EXISTS", line)
        elif kind == b"RECENT":
            self.recent = number
            if number > len(self.uids):
                self._problem(f"RECENT {number} above EXISTS {len(self.uids)}", line)
        elif not 1 <= number <= len(self.uids):
            self._problem(f"{kind.decode()} for sequence number {number} of {len(self.uids)}", line)
        elif kind == b"EXPUNGE":
            del self.uids[number - 1]
        else:
            uid = _UID.search(line, match.end())
            if uid:
                self._learn_uid(number, int(uid.group(1)), line)

    def _learn_uid(self, number: int, uid: int, line: bytes) -> None:
        known = self.uids[number - 1]
        if known is not None and known != uid:
            self._problem(f"sequence number {number} was UID {known}, now {uid}", line)
            return
        below = next((u for u in reversed(self.uids[:number - 1]) if u is not None), 0)
        above = next((u for u in self.uids[number:] if u is not None), None)
        if below >= uid or (above is not None and above <= uid):
            self._problem(f"UID {uid} at {number} does not ascend with its neighbours", line)
        self.uids[number - 1] = uid

    def _problem(self, text: str, line: bytes) -> None:
        self.problems.append(f"{text}: {line[:120]!r}")
