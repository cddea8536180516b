"""What POP3 reads: the maildrop at login and the texts of messages, in as few calls as possible.

A POP3 client reads a whole maildrop, one RETR after the other (RFC 1939 §5). Every
SQLite call lets go of the GIL and must win it back; with several sessions at once, that
hand-over, not SQLite's work, is what a message costs. So a session asks for the texts of
several messages at once (``pop3_texts``: one statement, one read transaction) and serves
the following RETRs from them.
"""

from __future__ import annotations

from typing import Sequence

# SQLite allows 32,766 host parameters; stay well below, as the rest of the store does.
_CHUNK = 500


class Pop3Mixin:
    def pop3_maildrop(self, mailbox_id: int) -> list[tuple[int, int, bool]]:
        """(uid, size, seen) of every message in UID order, for the POP3 login snapshot.

        ``size`` is what POP3 sends (RFC 1939 §5): stored bytes already end every line in
        CRLF (see messages.prepare()), but the last line may lack its CRLF; POP3 must add
        one before the terminating ".", so such a message is two octets longer on the wire
        than stored. ``seen``: the message has the \\Seen flag (RETR need not set it).
        """
        with self.db.reader() as conn:
            cursor = conn.cursor()
            cursor.row_factory = None  # plain tuples: 10,000 rows at every login
            return cursor.execute(
                "SELECT m.uid, m.size + CASE WHEN m.size = 0 OR substr(b.data, m.size - 1, 2) = x'0d0a'"
                " THEN 0 ELSE 2 END, instr(' ' || m.flags || ' ', ' \\Seen ') > 0"
                " FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? ORDER BY m.uid",
                (mailbox_id,)).fetchall()

    def pop3_texts(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
        """The stored bytes of these messages of one mailbox, by UID (POP3 RETR and TOP).

        One read transaction for all of them. A UID missing from the result is no longer
        in the mailbox (another session expunged or moved it), even if its blob lives on
        elsewhere. The caller bounds the batch: every text asked for is held in memory.
        """
        texts: dict[int, bytes] = {}
        with self.db.reader() as conn:
            cursor = conn.cursor()
            cursor.row_factory = None
            for start in range(0, len(uids), _CHUNK):
                chunk = uids[start:start + _CHUNK]
                texts.update(cursor.execute(
                    "SELECT m.uid, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id"
                    f" WHERE m.mailbox_id = ? AND m.uid IN ({','.join('?' * len(chunk))})",
                    (mailbox_id, *chunk)))
        return texts
