"""What changed in a mailbox since a modseq, read once however many sessions ask.

One delivery to a mailbox that a hundred IMAP clients watch wakes all of them at the
same moment, and each needs the same answer. The first to ask reads it; the others wait
for that read and share it. A commit that touches the mailbox forgets its answers before
anyone hears of the commit, so nobody is handed an answer older than the news that woke it.
"""

from __future__ import annotations

import threading
from typing import Callable

from appliance.store.messages import _ROW_COLUMNS, _rows
from appliance.store.models import MailboxChanges


class ChangeCache:
    """Answers per (mailbox, since-modseq), dropped when the mailbox changes."""

    def __init__(self, limit: int = 1024):
        self.limit = limit
        self._lock = threading.Lock()
        self._answers: dict[int, dict[int, MailboxChanges | None]] = {}
        self._generation: dict[int, int] = {}    # bumped by forget(): a read begun before it is stale
        self._readers: dict[int, threading.Lock] = {}  # one read at a time per mailbox

    def get(self, mailbox_id: int, since: int, read: Callable[[], MailboxChanges | None]) -> MailboxChanges | None:
        with self._lock:
            answers = self._answers.get(mailbox_id)
            if answers is not None and since in answers:
                return answers[since]
            gate = self._readers.setdefault(mailbox_id, threading.Lock())
        with gate:
            with self._lock:
                answers = self._answers.get(mailbox_id)
                if answers is not None and since in answers:
                    return answers[since]  # someone read it while we waited
                generation = self._generation.get(mailbox_id, 0)
            answer = read()
            with self._lock:
                if self._generation.get(mailbox_id, 0) == generation:
                    if len(self._answers) >= self.limit:
                        self._answers.clear()
                    self._answers.setdefault(mailbox_id, {})[since] = answer
            return answer

    def forget(self, mailbox_ids) -> None:
        with self._lock:
            for mailbox_id in mailbox_ids:
                self._generation[mailbox_id] = self._generation.get(mailbox_id, 0) + 1
                self._answers.pop(mailbox_id, None)


class ChangesMixin:
    def mailbox_changes(self, mailbox_id: int, since: int) -> MailboxChanges | None:
        """RFC 7162's view of a mailbox after modseq ``since``: None when the mailbox is gone."""
        return self.changes.get(mailbox_id, since, lambda: self._read_changes(mailbox_id, since))

    def _read_changes(self, mailbox_id: int, since: int) -> MailboxChanges | None:
        with self.db.reader() as conn:  # one snapshot: the horizon and the rows agree
            row = conn.execute("SELECT highestmodseq FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            if row is None:
                return None
            vanished = tuple(uid for uid, in conn.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", (mailbox_id, since)))
            changed = tuple(_rows(conn, f"SELECT {_ROW_COLUMNS} FROM messages WHERE mailbox_id = ? AND modseq > ?"
                                        " ORDER BY uid", (mailbox_id, since)))
            return MailboxChanges(row[0], vanished, changed)
