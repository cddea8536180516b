"""Scheduled snapshots, verified and pruned; one user's folder restored from one while the server runs."""

from __future__ import annotations

import sqlite3
import time

from appliance.migrate import backup
from tests.migrate.fixtures import cli, folder_contents


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")


def fill(srv, address, folder, n):
    user = srv.store.get_user(address) or srv.add_user(address)
    mb = srv.store.get_mailbox(user.id, folder) or srv.store.create_mailbox(user.id, folder)
    for i in range(n):
        srv.store.append(user.id, mb.id, b"Subject: %s %d\r\n\r\nbody\r\n" % (folder.encode(), i),
                         {"\\Seen", "$Label%d" % (i % 2)}, 1_700_000_000 + i)
    return user, mb


def test_scheduled_snapshot_verified_pruned_and_one_folder_restored_live(make_server):
    srv = make_server(backup={"interval": 0.6, "keep": 2})
    alice, work = fill(srv, "alice@example.org", "Work", 5)
    fill(srv, "alice@example.org", "INBOX", 3)
    bob, _ = fill(srv, "bob@example.org", "INBOX", 4)
    folder = srv.data_dir / "snapshots"
    before = folder_contents(srv.store, "alice@example.org")
    first = wait_for(lambda: backup.snapshots(folder))[-1]
    # the newest snapshot holds what the store held when it was taken
    wait_for(lambda: len(backup.snapshots(folder)) >= 2)
    wait_for(lambda: len(list(folder.iterdir())) == 2 and backup.snapshots(folder)[0] != first)  # pruned to keep=2
    snapshot = backup.snapshots(folder)[-1]
    out = cli(srv.data_dir, "backup", "verify", str(snapshot))
    assert "2 users" in out and "15 messages" not in out and "12 messages" in out and out.rstrip().endswith(": ok")

    # alice loses her Work folder's messages and part of INBOX; bob gets new mail meanwhile
    srv.store.delete_messages(work.id, [r.uid for r in srv.store.list_messages(work.id)])
    inbox = srv.store.get_mailbox(alice.id, "INBOX")
    srv.store.delete_messages(inbox.id, [srv.store.list_messages(inbox.id)[0].uid])
    fill(srv, "bob@example.org", "INBOX", 1)
    bob_before = folder_contents(srv.store, "bob@example.org")

    out = cli(srv.data_dir, "restore", str(snapshot), "--user", "alice@example.org", "--folder", "Work")
    assert "1 folder: 5 copied, 0 already there, 0 failed" in out
    after = folder_contents(srv.store, "alice@example.org")
    assert after["Work"] == before["Work"] and len(after["INBOX"]) == 2
    assert folder_contents(srv.store, "bob@example.org") == bob_before

    out = cli(srv.data_dir, "restore", str(snapshot), "--user", "alice@example.org")
    assert "1 copied, 7 already there" in out  # nothing duplicated; INBOX gets its lost message back
    restored = folder_contents(srv.store, "alice@example.org")
    assert {k: sorted(v) for k, v in restored.items()} == {k: sorted(v) for k, v in before.items()}


def test_verify_names_a_damaged_or_foreign_file(tmp_path, make_server):
    srv = make_server(backup={"interval": 0})
    fill(srv, "alice@example.org", "INBOX", 2)
    good = tmp_path / "good.sqlite"
    verdict = backup.take(srv.store, tmp_path)
    assert verdict.ok and verdict.counts["messages"] == 2
    good.write_bytes(verdict.path.read_bytes())

    damaged = tmp_path / "damaged.sqlite"
    data = bytearray(good.read_bytes())
    page = 4096
    data[page * 2:page * 2 + 200] = b"\xff" * 200  # scribble over a b-tree page
    damaged.write_bytes(bytes(data))
    assert "problem:" in cli(srv.data_dir, "backup", "verify", str(damaged), code=1)

    lost = tmp_path / "lost.sqlite"
    lost.write_bytes(good.read_bytes())
    conn = sqlite3.connect(lost)
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("DELETE FROM blobs")
    conn.commit()
    conn.close()
    assert "2 messages have lost their bytes" in cli(srv.data_dir, "backup", "verify", str(lost), code=1)

    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 500)
    assert "problem:" in cli(srv.data_dir, "backup", "verify", str(junk), code=1)
    assert "not a usable snapshot" in cli(srv.data_dir, "restore", str(junk), "--user", "alice@example.org", code=1)


def test_backup_file_still_works_as_before(make_server, tmp_path):
    srv = make_server(backup={"interval": 0})
    fill(srv, "alice@example.org", "INBOX", 1)
    out = cli(srv.data_dir, "backup", str(tmp_path / "copy.sqlite"))
    assert "backed up" in out and backup.verify(tmp_path / "copy.sqlite").ok
    assert "ok" in cli(srv.data_dir, "backup", "verify", str(tmp_path / "copy.sqlite"))
