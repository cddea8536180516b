"""Writing folders of messages into one local user, resumably.

A message is skipped when the target folder already holds one with the same content
(its SHA-256, counted: a source with two identical messages gets both). So running an
import again after an interruption — or again later — copies only what is missing.
Messages go in small batches, one transaction each; a batch the store refuses is
retried message by message, so each failure names its message and the rest go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable

from appliance.migrate.source import SourceFolder, SourceMessage
from appliance.store import Incoming, Mailbox, Store, StoreError, content_hash

log = logging.getLogger("kotakpos.migrate")

BATCH_MESSAGES = 100
BATCH_BYTES = 16 * 1024 * 1024


@dataclass
class Summary:
    folders: int = 0
    copied: int = 0
    skipped: int = 0           # already present
    failed: list[str] = field(default_factory=list)   # "label: reason", one per message

    def add(self, other: "Summary") -> None:
        self.folders += other.folders
        self.copied += other.copied
        self.skipped += other.skipped
        self.failed += other.failed

    def text(self) -> str:
        return (f"{self.folders} folder{'s' * (self.folders != 1)}: {self.copied} copied, "
                f"{self.skipped} already there, {len(self.failed)} failed")


class Importer:
    def __init__(self, store: Store, address: str):
        self.store = store
        user = store.get_user(address)
        if user is None:
            raise StoreError(f"no user {address}")
        self.user = user

    def mailbox(self, name: str, special_use: str | None = None) -> Mailbox:
        """The local folder for a source folder: ours with the same special use, else by name (created)."""
        mailboxes = self.store.list_mailboxes(self.user.id)
        if special_use:
            for mb in mailboxes:
                if mb.special_use == special_use:
                    return mb
        existing = self.store.get_mailbox(self.user.id, name)
        if existing is not None:
            return existing
        taken = {mb.special_use for mb in mailboxes}
        return self.store.create_mailbox(self.user.id, name, special_use if special_use not in taken else None)

    def import_folder(self, folder: SourceFolder, progress: Callable[[int], None] = lambda n: None) -> Summary:
        """Copy one source folder's messages that the local folder lacks."""
        into = FolderImport(self, self.mailbox(folder.name, folder.special_use))
        into.add(folder.messages(), progress)
        return into.summary


class FolderImport:
    """Messages going into one local folder, perhaps in several calls (an IMAP folder fetched in chunks)."""

    def __init__(self, importer: Importer, mailbox: Mailbox):
        self.store = importer.store
        self.user = importer.user
        self.mailbox = mailbox
        self.present = self.store.mailbox_hashes(mailbox.id)  # what is there already, counted by content
        self.summary = Summary(folders=1)

    def add(self, messages: Iterable[SourceMessage], progress: Callable[[int], None] = lambda n: None) -> list[str]:
        """Store the messages the folder lacks; returns the failures of this call ("label: reason")."""
        failed_before = len(self.summary.failed)
        batch: list[SourceMessage] = []
        size = 0
        for message in messages:
            digest = content_hash(message.raw)
            if self.present[digest] > 0:
                self.present[digest] -= 1
                self.summary.skipped += 1
                progress(1)
                continue
            batch.append(message)
            size += len(message.raw)
            if len(batch) >= BATCH_MESSAGES or size >= BATCH_BYTES:
                self._store_batch(batch, progress)
                batch, size = [], 0
        if batch:
            self._store_batch(batch, progress)
        return self.summary.failed[failed_before:]

    def _store_batch(self, batch: list[SourceMessage], progress) -> None:
        incoming = [Incoming(m.raw, m.flags, m.internaldate) for m in batch]
        try:
            self.store.append_many(self.user.id, self.mailbox.id, incoming)
            self.summary.copied += len(batch)
            progress(len(batch))
            return
        except StoreError:
            pass  # find out which message it was: one at a time
        for message, one in zip(batch, incoming):
            try:
                self.store.append_many(self.user.id, self.mailbox.id, [one])
                self.summary.copied += 1
            except StoreError as e:
                log.warning("could not import %s: %s", message.label, e)
                self.summary.failed.append(f"{message.label}: {e}")
            progress(1)
