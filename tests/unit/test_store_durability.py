"""The store's writer syncs the WAL after its turn: out of the flock, before any caller hears.

``os.fdatasync`` is replaced by a double that can hold the writer inside it; SQLite's own
syncs (checkpoints) are C calls and are not affected.
"""

import errno
import fcntl
import os
import subprocess
import sys
import threading

import pytest

from appliance.store import db as dbmod
from appliance.store.db import Database

CHILD_WRITE = (
    "import sys; from pathlib import Path; from appliance.store.db import Database\n"
    "d = Database(Path(sys.argv[1]), publish=lambda events: None)\n"
    "d.write(lambda tx: tx.execute('INSERT INTO t VALUES (?)', (sys.argv[2],)))\n"
    "d.close()\n")


class HeldSync:
    """An ``fdatasync`` that blocks the store writer of ``held`` until ``release``."""

    def __init__(self, held: Database):
        self.held = held
        self.entered = threading.Event()
        self.release = threading.Event()
        self.paths: list[str] = []
        self.real = os.fdatasync

    def __call__(self, fd: int) -> None:
        if threading.current_thread() is self.held._writer:
            self.paths.append(os.readlink(f"/proc/self/fd/{fd}"))
            self.entered.set()
            assert self.release.wait(30)
        self.real(fd)


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "t.sqlite"
    db = Database(path, publish=lambda events: None)
    db.write(lambda tx: tx.execute("CREATE TABLE t (v TEXT)"))
    yield db
    db.close()


def rows(db: Database) -> list[str]:
    with db.reader() as conn:
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY rowid")]


def test_no_caller_hears_of_a_commit_before_the_wal_is_synced(database, monkeypatch):
    held = HeldSync(database)
    monkeypatch.setattr(dbmod.os, "fdatasync", held)
    answered = []
    caller = threading.Thread(target=lambda: answered.append(
        database.write(lambda tx: tx.execute("INSERT INTO t VALUES ('one')").rowcount)))
    caller.start()
    assert held.entered.wait(30)
    try:
        assert held.paths == [str(database.path) + "-wal"]
        assert rows(database) == ["one"]  # committed: the sync comes after the COMMIT
        caller.join(0.3)
        assert caller.is_alive() and answered == []  # ... and before the answer
        # the turn is over: another writer may take the lock file while this one syncs
        other = os.open(str(database.path) + "-lock", os.O_RDWR)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(other, fcntl.LOCK_UN)
        finally:
            os.close(other)
    finally:
        held.release.set()
    caller.join(30)
    assert answered == [1]


def test_another_process_commits_while_this_one_syncs(database, monkeypatch):
    held = HeldSync(database)
    monkeypatch.setattr(dbmod.os, "fdatasync", held)
    caller = threading.Thread(target=database.write, args=(lambda tx: tx.execute("INSERT INTO t VALUES ('here')"),))
    caller.start()
    assert held.entered.wait(30)
    try:
        subprocess.run([sys.executable, "-c", CHILD_WRITE, str(database.path), "there"], check=True, timeout=60)
        assert caller.is_alive()  # the child's commit, its sync included, did not wait for ours
    finally:
        held.release.set()
    caller.join(30)
    assert rows(database) == ["here", "there"]
    with database.reader() as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_sync_the_disk_refuses_fails_its_callers_and_the_writer_goes_on(tmp_path, monkeypatch):
    published = []
    database = Database(tmp_path / "t.sqlite", publish=published.extend)
    real = os.fdatasync
    failures = [OSError(errno.EIO, "Input/output error")]

    def failing_once(fd: int) -> None:
        if failures:
            raise failures.pop()
        real(fd)

    def insert(value):
        def job(tx):
            tx.execute("INSERT INTO t VALUES (?)", (value,))
            tx.emit(value)
        return job

    try:
        database.write(lambda tx: tx.execute("CREATE TABLE t (v TEXT)"))
        monkeypatch.setattr(dbmod.os, "fdatasync", failing_once)
        with pytest.raises(OSError) as refused:
            database.write(insert("maybe"))
        assert refused.value.errno == errno.EIO
        # committed, so readers see it: the process's listeners (its caches) hear of it too
        assert rows(database) == ["maybe"] and published == ["maybe"]
        database.write(insert("next"))
        assert rows(database) == ["maybe", "next"] and published == ["maybe", "next"]
    finally:
        database.close()


def test_a_database_that_need_not_be_durable_is_not_synced(tmp_path, monkeypatch):
    syncs = []
    monkeypatch.setattr(dbmod.os, "fdatasync", syncs.append)
    db = Database(tmp_path / "index.sqlite", publish=lambda events: None, synchronous="NORMAL")
    try:
        db.write(lambda tx: tx.execute("CREATE TABLE t (v TEXT)"))
    finally:
        db.close()
    assert syncs == []


def test_a_wal_file_replaced_under_its_name_is_opened_again(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(dbmod.os, "fdatasync", lambda fd: synced.append(os.fstat(fd).st_ino))
    wal = dbmod._Wal(tmp_path / "x.sqlite")
    wal.path.write_bytes(b"first")
    try:
        wal.sync()
        wal.sync()
        wal.path.unlink()
        wal.path.write_bytes(b"second")
        wal.sync()
    finally:
        wal.close()
    assert synced[0] == synced[1] != synced[2]
