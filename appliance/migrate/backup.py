"""Snapshots that restore: scheduled copies of the store, checked after writing, and
restoring one user's mail (or one folder) from a snapshot into the live store.

A snapshot is a plain SQLite file made with the online backup API while the server runs
(``Store.snapshot``). Right after writing, it is opened again read-only and must pass
``PRAGMA integrity_check``, hold every message's bytes, and count exactly the users,
mailboxes, messages and blobs the store had at the moment of the copy. The scheduler
keeps the newest ``keep`` snapshots and counts the interval from the newest one on disk,
so a restart does not take an extra snapshot (the very first comes ten minutes after start).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from appliance.migrate.importer import FolderImport, Importer, Summary
from appliance.migrate.source import SourceMessage
from appliance.store import Snapshot, Store, StoreError

log = logging.getLogger("kotakpos.backup")

PATTERN = "kotakpos-*.sqlite"
FIRST_SNAPSHOT_AFTER = 600.0   # seconds after start when the folder holds no snapshot yet


@dataclass
class Verdict:
    path: Path
    integrity: str = ""
    counts: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: Path | str, expected: dict[str, int] | None = None) -> Verdict:
    """Check a snapshot file: integrity, every message's bytes present, counts as ``expected``."""
    verdict = Verdict(Path(path))
    try:
        snapshot = Snapshot(path)
    except StoreError as e:
        verdict.problems.append(str(e))
        return verdict
    with snapshot:
        verdict.integrity = snapshot.integrity_check()
        if verdict.integrity != "ok":
            verdict.problems.append(f"integrity check: {verdict.integrity}")
            return verdict
        try:
            verdict.counts = snapshot.counts()
            orphans = snapshot.orphans()
        except sqlite3.DatabaseError as e:
            verdict.problems.append(f"not a Kotakpos store: {e}")
            return verdict
        if orphans:
            verdict.problems.append(f"{orphans} messages have lost their bytes")
        for name, count in (expected or {}).items():
            if verdict.counts.get(name) != count:
                verdict.problems.append(f"{verdict.counts.get(name)} {name} where the store had {count}")
    return verdict


def take(store: Store, folder: Path) -> Verdict:
    """Write a new snapshot into ``folder`` and verify it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # snapshots are whole copies of everyone's mail
    now = time.time()
    path = folder / f"kotakpos-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}-{int(now * 1000) % 1000:03d}.sqlite"
    counts = store.snapshot(path)
    return verify(path, counts)


def snapshots(folder: Path) -> list[Path]:
    """The snapshots in ``folder``, oldest first (their names sort by time)."""
    return sorted(folder.glob(PATTERN)) if folder.is_dir() else []


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` snapshots; returns the deleted ones."""
    doomed = snapshots(folder)[:-keep] if keep > 0 else []
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


class Scheduler:
    """Takes a snapshot every ``interval`` seconds in a thread, from ``start()`` to ``stop()``."""

    def __init__(self, store: Store, folder: Path, interval: float, keep: int):
        self.store = store
        self.folder = folder
        self.interval = interval
        self.keep = keep
        self._started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backup-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _due(self) -> float:
        existing = snapshots(self.folder)
        if not existing:
            # The first one soon after start: a box restarted more often than the interval still gets one.
            return self._started + min(self.interval, FIRST_SNAPSHOT_AFTER)
        return existing[-1].stat().st_mtime + self.interval

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, self._due() - time.time())):
            try:
                verdict = take(self.store, self.folder)
            except (OSError, sqlite3.Error) as e:
                log.error("snapshot into %s failed: %s", self.folder, e)
                self._stop.wait(min(self.interval, 300))
                continue
            if verdict.ok:
                log.info("snapshot %s verified: %d messages", verdict.path.name, verdict.counts["messages"])
                prune(self.folder, self.keep)
            else:
                # Keep the bad file for inspection, under a name the scheduler ignores.
                bad = verdict.path.with_suffix(".bad")
                verdict.path.replace(bad)
                log.error("snapshot %s failed verification (%s); kept as %s", verdict.path.name,
                          "; ".join(verdict.problems), bad.name)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def restore(store: Store, path: Path | str, address: str, folder: str | None = None
            ) -> Iterator[tuple[str, int, Callable[[Callable[[int], None]], Summary]]]:
    """Put back a user's mail (or one folder of it) from a snapshot into the live store.

    Yields ``(folder name, message count, run)`` per folder; ``run(progress)`` restores it.
    Only that user's folders are written; a message already there (same content) is not
    added again, so restoring twice changes nothing. A folder deleted since the snapshot
    is created again.
    """
    importer = Importer(store, address)
    with Snapshot(path) as snapshot:
        mailboxes = snapshot.mailboxes(address)
        if folder is not None:
            mailboxes = [m for m in mailboxes if m[1] == folder]
            if not mailboxes:
                raise StoreError(f"the snapshot has no folder {folder} of {address}")
        for mailbox_id, name, special_use in mailboxes:
            def run(progress, mailbox_id=mailbox_id, name=name, special_use=special_use) -> Summary:
                target = store.get_mailbox(importer.user.id, name) or importer.mailbox(name, special_use)
                into = FolderImport(importer, target)
                into.add((SourceMessage(m.raw, m.flags, m.internaldate, f"{name}, message {number}")
                          for number, m in enumerate(snapshot.messages(mailbox_id), 1)), progress)
                return into.summary
            yield name, snapshot.message_count(mailbox_id), run
