"""Mailboxes (folders): create, rename, delete, subscribe, status.

Names are data: a full hierarchical name with "/" as delimiter, stored as text and
compared exactly ("INBOX" in any case means the inbox). They are never paths or SQL.
"""

from __future__ import annotations

import time

from appliance.store.errors import AlreadyExists, InvalidName, NotFound, StoreError
from appliance.store.events import MailboxChanged
from appliance.store.models import Mailbox, MailboxStatus

DELIMITER = "/"
MAX_NAME_LENGTH = 512
MAX_DEPTH = 32


def normalize_mailbox_name(name: str) -> str:
    """The canonical form of a mailbox name, or InvalidName when it cannot be one."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidName("mailbox names must have 1 to 512 characters")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise InvalidName("mailbox names must not contain control characters")
    parts = name.split(DELIMITER)
    if any(p == "" for p in parts):
        raise InvalidName("mailbox names must not have empty levels")
    if len(parts) > MAX_DEPTH:
        raise InvalidName("mailbox hierarchy too deep")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return DELIMITER.join(parts)


def _mailbox(row) -> Mailbox:
    return Mailbox(id=row["id"], user_id=row["user_id"], name=row["name"], uidvalidity=row["uidvalidity"],
                   uidnext=row["uidnext"], highestmodseq=row["highestmodseq"], special_use=row["special_use"])


class MailboxesMixin:
    def _insert_mailbox(self, tx, user_id: int, name: str, special_use: str | None) -> int:
        # UIDVALIDITY must change whenever a name is reused (RFC 3501 §2.3.1.1): take a
        # store-wide value that only ever grows.
        row = tx.execute("SELECT value FROM meta WHERE key = 'last_uidvalidity'").fetchone()
        last = int(row["value"]) if row else 0
        uidvalidity = max(int(time.time()), last + 1) & 0xFFFFFFFF
        tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_uidvalidity', ?)", (str(uidvalidity),))
        cur = tx.execute(
            "INSERT INTO mailboxes(user_id, name, uidvalidity, uidnext, highestmodseq, special_use) VALUES (?,?,?,1,1,?)",
            (user_id, name, uidvalidity, special_use))
        return cur.lastrowid

    def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        with self.db.reader() as conn:
            rows = conn.execute("SELECT * FROM mailboxes WHERE user_id = ? ORDER BY name", (user_id,)).fetchall()
        return [_mailbox(r) for r in rows]

    def get_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        try:
            name = normalize_mailbox_name(name)
        except InvalidName:
            return None
        with self.db.reader() as conn:
            row = conn.execute("SELECT * FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, name)).fetchone()
        return _mailbox(row) if row else None

    def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        with self.db.reader() as conn:
            row = conn.execute("SELECT * FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
        return _mailbox(row) if row else None

    def create_mailbox(self, user_id: int, name: str, special_use: str | None = None) -> Mailbox:
        """RFC 3501 §6.3.3: create ``name`` (and any missing parents)."""
        name = normalize_mailbox_name(name)

        def job(tx):
            if tx.execute("SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, name)).fetchone():
                raise AlreadyExists(f"mailbox {name} already exists")
            mailbox_id = self._insert_with_parents(tx, user_id, name, special_use)
            return _mailbox(tx.execute("SELECT * FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone())

        return self.db.write(job)

    def _insert_with_parents(self, tx, user_id: int, name: str, special_use: str | None) -> int:
        parts = name.split(DELIMITER)
        for depth in range(1, len(parts)):
            parent = DELIMITER.join(parts[:depth])
            if not tx.execute("SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, parent)).fetchone():
                self._insert_mailbox(tx, user_id, parent, None)
        mailbox_id = self._insert_mailbox(tx, user_id, name, special_use)
        tx.emit(MailboxChanged("created", user_id, mailbox_id))
        return mailbox_id

    def _make_missing_mailbox(self, tx, user_id: int, name: str) -> None:
        """Inside a delivery: create ``name`` unless it exists (RFC 5490 §3.2, fileinto :create).
        An invalid name is left alone: the delivery then falls back to INBOX."""
        try:
            name = normalize_mailbox_name(name)
        except InvalidName:
            return
        if not tx.execute("SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, name)).fetchone():
            self._insert_with_parents(tx, user_id, name, None)

    def delete_mailbox(self, user_id: int, name: str) -> None:
        """RFC 3501 §6.3.4: delete a mailbox and its messages; INBOX cannot be deleted."""
        name = normalize_mailbox_name(name)
        if name == "INBOX":
            raise StoreError("INBOX cannot be deleted")

        def job(tx):
            row = tx.execute("SELECT id FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, name)).fetchone()
            if not row:
                raise NotFound(f"no mailbox {name}")
            self._delete_mailbox_rows(tx, row["id"])
            tx.emit(MailboxChanged("deleted", user_id, row["id"]))

        self.db.write(job)

    def _delete_mailbox_rows(self, tx, mailbox_id: int) -> None:
        blob_ids = [r["blob_id"] for r in tx.execute("SELECT blob_id FROM messages WHERE mailbox_id = ?", (mailbox_id,))]
        tx.execute("DELETE FROM messages WHERE mailbox_id = ?", (mailbox_id,))
        tx.execute("DELETE FROM expunged WHERE mailbox_id = ?", (mailbox_id,))
        tx.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox_id,))
        self._release_blobs(tx, blob_ids)

    def rename_mailbox(self, user_id: int, old: str, new: str) -> None:
        """RFC 3501 §6.3.5: rename a mailbox and its children, keeping UIDs and UIDVALIDITY.

        Renaming INBOX moves its messages into a new mailbox and leaves INBOX empty.
        """
        old, new = normalize_mailbox_name(old), normalize_mailbox_name(new)

        def job(tx):
            src = tx.execute("SELECT * FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, old)).fetchone()
            if not src:
                raise NotFound(f"no mailbox {old}")
            if tx.execute("SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, new)).fetchone():
                raise AlreadyExists(f"mailbox {new} already exists")
            if new.startswith(old + DELIMITER):
                raise InvalidName("a mailbox cannot be moved inside itself")
            parts = new.split(DELIMITER)
            for depth in range(1, len(parts)):
                parent = DELIMITER.join(parts[:depth])
                if not tx.execute("SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, parent)).fetchone():
                    self._insert_mailbox(tx, user_id, parent, None)
            if old == "INBOX":
                target = self._insert_mailbox(tx, user_id, new, None)
                tx.execute("UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ?", (target, src["id"]))
                tx.execute("UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?",
                           (src["uidnext"], src["highestmodseq"], target))
                tx.emit(MailboxChanged("expunge", user_id, src["id"]))
                tx.emit(MailboxChanged("created", user_id, target))
                return
            children = tx.execute("SELECT id, name FROM mailboxes WHERE user_id = ? AND (name = ? OR name LIKE ? ESCAPE '\\')",
                                  (user_id, old, _like_prefix(old + DELIMITER))).fetchall()
            for child in children:
                renamed = new + child["name"][len(old):]
                tx.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (renamed, child["id"]))
                tx.emit(MailboxChanged("renamed", user_id, child["id"]))
            tx.execute("UPDATE subscriptions SET name = ? || substr(name, ?) WHERE user_id = ? AND (name = ? OR name LIKE ? ESCAPE '\\')",
                       (new, len(old) + 1, user_id, old, _like_prefix(old + DELIMITER)))

        self.db.write(job)

    def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        """RFC 3501 §6.3.6-7. A name may stay subscribed after its mailbox is gone."""
        name = normalize_mailbox_name(name)

        def job(tx):
            if subscribed:
                tx.execute("INSERT OR IGNORE INTO subscriptions(user_id, name) VALUES (?, ?)", (user_id, name))
            else:
                tx.execute("DELETE FROM subscriptions WHERE user_id = ? AND name = ?", (user_id, name))
            tx.emit(MailboxChanged("subscriptions", user_id, 0))  # IMAP NOTIFY SubscriptionChange (RFC 5465 §5.5)

        self.db.write(job)

    def subscriptions(self, user_id: int) -> set[str]:
        with self.db.reader() as conn:
            return {r["name"] for r in conn.execute("SELECT name FROM subscriptions WHERE user_id = ?", (user_id,))}

    def mailbox_status(self, mailbox_id: int) -> MailboxStatus:
        """Counts for STATUS and SELECT (RFC 3501 §6.3.10)."""
        with self.db.reader() as conn:
            mb = conn.execute("SELECT * FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            if not mb:
                raise NotFound("no such mailbox")
            row = conn.execute(
                "SELECT count(*) AS messages, coalesce(sum(recent), 0) AS recent, coalesce(sum(size), 0) AS size,"
                " coalesce(sum(instr(' ' || flags || ' ', ' \\Seen ') = 0), 0) AS unseen,"
                " coalesce(sum(instr(' ' || flags || ' ', ' \\Deleted ') > 0), 0) AS deleted"
                " FROM messages WHERE mailbox_id = ?", (mailbox_id,)).fetchone()
        return MailboxStatus(messages=row["messages"], recent=row["recent"], unseen=row["unseen"],
                             deleted=row["deleted"], size=row["size"], uidnext=mb["uidnext"],
                             uidvalidity=mb["uidvalidity"], highestmodseq=mb["highestmodseq"])


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
