"""Writing a user's folders out as mbox files or Maildir folders (see ``mbox``, ``maildir``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from appliance.migrate import maildir, mbox
from appliance.store import Mailbox, Store, StoreError, content_hash

FORMATS = ("mbox", "maildir")


def folders_of(store: Store, address: str, only: str | None = None) -> tuple[int, list[Mailbox]]:
    """(user id, the folders to export): all of them, or the one named ``only``."""
    user = store.get_user(address)
    if user is None:
        raise StoreError(f"no user {address}")
    if only is not None:
        mailbox = store.get_mailbox(user.id, only)
        if mailbox is None:
            raise StoreError(f"{address} has no folder {only}")
        return user.id, [mailbox]
    return user.id, store.list_mailboxes(user.id)


def export_folder(store: Store, mailbox: Mailbox, fmt: str, root: Path,
                  progress: Callable[[int], None] = lambda n: None) -> int:
    """Write one folder under ``root``; returns how many messages were written."""
    rows = store.list_messages(mailbox.id)
    if fmt == "mbox":
        path = mbox.folder_path(root, mailbox.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for row in rows:
                mbox.write(out, store.get_raw(row.blob_id), row.flags, row.internaldate)
                progress(1)
    else:
        writer = maildir.Writer(maildir.folder_path(root, mailbox.name))
        # A Maildir may already hold an earlier export: write only what it lacks.
        present = writer.contents()
        written = 0
        for row in rows:
            raw = store.get_raw(row.blob_id)
            digest = content_hash(raw)
            if present[digest] > 0:
                present[digest] -= 1
            else:
                writer.write(raw, row.flags, row.internaldate, row.uid)
                written += 1
            progress(1)
        return written
    return len(rows)
