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
        one before the terminating ".", so such a message (in ``blobs_unterminated``) is
        two octets longer on the wire than stored. ``seen``: it has the \\Seen flag.
        """
        # One row for the whole maildrop, not one per message: every row fetched gives up
        # the GIL, and eight sessions logging in at once would hand it over 80,000 times.
        with self.db.reader() as conn:
            text = conn.execute(
                "SELECT group_concat(m.uid || ' ' || (m.size + 2 * (m.blob_id IN (SELECT blob_id FROM blobs_unterminated)))"
                " || ' ' || (instr(' ' || m.flags || ' ', ' \\Seen ') > 0), ' ')"
                " FROM messages m WHERE m.mailbox_id = ?", (mailbox_id,)).fetchone()[0]
        numbers = list(map(int, text.split())) if text else []
        listing = list(zip(numbers[0::3], numbers[1::3], map(bool, numbers[2::3])))
        listing.sort()  # group_concat promises no order
        return listing

    def pop3_texts(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
        """The stored bytes of these messages of one mailbox, by UID (POP3 RETR and TOP).

        One read transaction for all of them. A UID missing from the result is no longer
        in the mailbox (another session expunged or moved it), even if its blob lives on
        elsewhere. The caller bounds the batch: every text asked for is held in memory.
        """
        # One row for the whole batch (the texts end to end, and "uid length" pairs), not a
        # row per message: each row fetched gives up the GIL, and with eight sessions that
        # hand-over costs more than the message. Both aggregates see the rows in the same
        # order, so the n-th pair describes the n-th text. blobs.size is the text's length,
        # and reading it spares SQLite a second look at the text.
        texts: dict[int, bytes] = {}
        with self.db.reader() as conn:
            for start in range(0, len(uids), _CHUNK):
                chunk = uids[start:start + _CHUNK]
                data, index = conn.execute(
                    "SELECT CAST(group_concat(b.data, '') AS BLOB), group_concat(m.uid || ' ' || b.size, ' ')"
                    " FROM messages m JOIN blobs b ON b.id = m.blob_id"
                    f" WHERE m.mailbox_id = ? AND m.uid IN ({','.join('?' * len(chunk))})",
                    (mailbox_id, *chunk)).fetchone()
                numbers = list(map(int, index.split())) if index else []
                offset = 0
                for uid, length in zip(numbers[0::2], numbers[1::2]):
                    texts[uid] = data[offset:offset + length]
                    offset += length
        return texts
