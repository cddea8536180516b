"""The store: every byte of mail and every account, in one SQLite file.

This is the only package that holds SQL. Protocols call the narrow API of ``Store``,
named after mailbox operations; each write is one transaction, committed and fsynced
before the call returns (group commit in ``db``), and change events go out after commit
(``events``) for IMAP IDLE and the TUI, also for what other processes commit to the file
(``journal``). The API is split by subject into mixins —
``accounts``, ``mailboxes``, ``messages``, ``imap`` (what IMAP reads), ``pop3`` (what POP3 reads, in few calls), ``queue``, ``filters`` (the MDA's tables),
``migration`` (bulk import, snapshots), ``credentials`` (app passwords, two-step sign-in) — so
each file reads on its own. What the serving processes share but is no mail (sessions,
connection slots, failed logins, ``\\Recent`` claims, counters) lives in a second, unsynced
file beside it (``runtime``).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from appliance.store import migrations, runtime
from appliance.store.accounts import AccountsMixin, normalize_address, normalize_domain, split_address
from appliance.store.db import MAX_BATCH, Database, create_private
from appliance.store.errors import AlreadyExists, InvalidName, NotFound, QuotaExceeded, ScriptActive, StorageFull, StoreError
from appliance.store.filters import DEFAULT_SCRIPT, FiltersMixin, Quarantined, RequestedReceipt, SentReceipt, SieveScript
from appliance.store.events import (AccountsChanged, BlobReleased, EventBus, MailboxChanged, Overflowed, QuarantineChanged,
                                     QueueChanged, Subscription)
from appliance.store.imap import ChangeCache, ImapMixin
from appliance.store.mailboxes import DELIMITER, MailboxesMixin, normalize_mailbox_name
from appliance.store.messages import DeliveryResult, MessagesMixin
from appliance.store.migration import Incoming, MigrationMixin, Snapshot, content_hash
from appliance.store.pop3 import Pop3Mixin
from appliance.store.models import (Delivery, Mailbox, MailboxChanges, MailboxStatus, MessageRow, Notice, Parsed, QueueEntry,
                                    QueueOutcome, QueueRow, Resolution, User, AppPassword)
from appliance.store.queue import QueueMixin
from appliance.store.runtime import Runtime
from appliance.store.search import SearchIndex
from appliance.store.counters import CountersMixin
from appliance.store.credentials import CredentialsMixin
from appliance.store.secrets import SecretsMixin

__all__ = [
    "Store", "StoreError", "NotFound", "AlreadyExists", "InvalidName", "QuotaExceeded", "ScriptActive", "StorageFull",
    "User", "AppPassword", "Mailbox", "MailboxChanges", "MailboxStatus", "MessageRow", "Parsed", "Resolution", "Delivery", "DeliveryResult",
    "QueueEntry", "QueueRow", "QueueOutcome", "Notice", "MailboxChanged", "QueueChanged", "QuarantineChanged", "AccountsChanged",
    "Overflowed", "Subscription",
    "Quarantined", "RequestedReceipt", "SentReceipt", "SieveScript", "DEFAULT_SCRIPT", "Incoming", "Snapshot", "content_hash",
    "DELIMITER", "normalize_address", "normalize_domain", "normalize_mailbox_name", "split_address",
]

DB_NAME = "kotakpos.sqlite"


class Store(AccountsMixin, MailboxesMixin, MessagesMixin, ImapMixin, Pop3Mixin, QueueMixin, FiltersMixin, MigrationMixin, SecretsMixin, CountersMixin,
            CredentialsMixin):
    """The message store. Thread-safe: share one instance across all sessions."""

    def __init__(self, path: Path | str, max_batch: int = MAX_BATCH, indexer: bool = True):
        """``max_batch=1`` commits every write alone (one fsync each): only benchmarks want that.
        ``indexer``: this process keeps the search index up to date (one process on the file does)."""
        self.path = create_private(path)
        search_path = create_private(self.path.with_name(self.path.stem + "-search.sqlite"))
        migrations.migrate(self.path)
        self.bus = EventBus()
        self.changes = ChangeCache()
        self.db = Database(self.path, self._after_commit, max_batch, journal=True)
        self.search_index = SearchIndex(self.db, search_path, indexer)
        self._runtime: Runtime | None = None
        self._runtime_lock = threading.Lock()

    @property
    def runtime(self) -> Runtime:
        """The serving processes' shared state beside this store (``runtime``), opened on first use."""
        with self._runtime_lock:
            if self._runtime is None:
                self._runtime = Runtime(self.path)
            return self._runtime

    @classmethod
    def in_folder(cls, data_dir: Path | str, **options) -> "Store":
        return cls(Path(data_dir) / DB_NAME, **options)

    def _after_commit(self, events: list) -> None:
        """Publish the events of a commit, this process's own or another's (``journal``)."""
        released = [e.blob_id for e in events if isinstance(e, BlobReleased)]
        if released:
            self.search_index.forget(released)
        if any(isinstance(e, Overflowed) for e in events):
            # another process's changes were missed: every answer kept may be old
            self.changes.forget_all()
            self.accounts_cache.invalidate()
            self.bus.overflow_all()
            return
        public = [e for e in events if not isinstance(e, BlobReleased)]
        # before anyone hears of the commit: nobody may then be handed an older answer
        mailbox_events = [e for e in public if isinstance(e, MailboxChanged)]
        self.changes.forget(mailbox_events)
        remade = [e.mailbox_id for e in mailbox_events if e.kind in ("created", "deleted")]
        if remade and self._runtime is not None:  # only a serving process claims \Recent
            self._runtime.forget_recent_claims(remade)
        if any(isinstance(e, AccountsChanged) for e in public):
            self.accounts_cache.invalidate()  # another process's change (this one's forgot already)
        if public:
            self.bus.publish(public)

    def catch_up(self) -> None:
        """Publish now what other processes committed to the file (a running server is asked
        to after ``kotakpos import`` and the like); returns once it is published."""
        self.db.catch_up()

    def catch_up_if_behind(self) -> None:
        """Hear first what other processes committed, if this one has not yet: a session calls
        it before answering from events and cached answers, so that a change another worker
        acknowledged a moment ago is in the answer (a read of a shared number when nothing is new)."""
        self.db.catch_up_if_behind()

    def after_each_commit(self, hook) -> None:
        """``hook()`` runs right after each commit that others must hear of (it wrote the
        change journal), in the writer thread: it must not block."""
        self.db.after_journal_row = hook

    def subscribe(self, user_id: int | None = None, wants=None) -> Subscription:
        """Change events after commit: one user's mailbox events, or everything (None);
        ``wants``: only the events it is true of (see ``EventBus.subscribe``)."""
        return self.bus.subscribe(user_id, wants=wants)

    def counts(self) -> dict:
        """Totals for status views."""
        with self.db.reader() as conn:
            one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
            return {
                "domains": one("SELECT count(*) FROM domains"),
                "users": one("SELECT count(*) FROM users"),
                "aliases": one("SELECT count(DISTINCT alias) FROM aliases"),
                "messages": one("SELECT count(*) FROM messages"),
                "blobs": one("SELECT count(*) FROM blobs"),
                "queue": one("SELECT count(*) FROM queue"),
                "quarantine": one("SELECT count(*) FROM quarantine"),
                "bytes": self.path.stat().st_size if self.path.exists() else 0,
            }

    def backup(self, target: Path | str) -> None:
        """A consistent copy of the live database (SQLite's online backup API)."""
        backup_database(self.path, target)

    def integrity_check(self) -> str:
        with self.db.reader() as conn:
            return conn.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        self.search_index.close()  # first: it reads from the store's database
        self.db.close()
        if self._runtime is not None:
            self._runtime.close()


def reset_runtime(data_dir: Path | str) -> None:
    """Empty the serving processes' shared state of the store in ``data_dir`` (``runtime.reset``)."""
    runtime.reset(Path(data_dir) / DB_NAME)


def backup_database(source: Path | str, target: Path | str) -> None:
    """A consistent copy of a store file that may be in use (used when no Store is open here)."""
    src = sqlite3.connect(str(source))
    target = Path(target)
    tmp = target.with_name(target.name + ".partial")
    tmp.unlink(missing_ok=True)
    dest = sqlite3.connect(str(create_private(tmp)))
    try:
        src.backup(dest)
        dest.execute("PRAGMA journal_mode=DELETE")
    finally:
        dest.close()
        src.close()
    tmp.replace(target)
