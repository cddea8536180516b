"""Backup while the server takes mail, then restore into a stopped data folder."""

import sqlite3
import threading

from appliance.store import Delivery, Store
from tests.system.process import ServeProcess, run_cli


def test_backup_while_writers_run_then_restore(tmp_path):
    data = tmp_path / "data"
    store = Store.in_folder(data)
    store.add_domain("example.org")
    user = store.add_user("alice@example.org", "pw")
    stop = threading.Event()
    delivered = []

    def writer():
        while not stop.is_set():
            n = len(delivered)
            store.deliver(b"Subject: %d\r\n\r\nbody\r\n" % n, [Delivery(user.id)])
            delivered.append(n)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        backups = []
        for n in range(3):
            target = tmp_path / f"backup{n}.sqlite"
            result = run_cli("backup", str(target), data_dir=data)
            assert result.returncode == 0, result.stderr
            backups.append(target)
    finally:
        stop.set()
        for t in threads:
            t.join()
    inbox = store.get_mailbox(user.id, "INBOX")
    total = len(store.list_messages(inbox.id))
    store.close()

    for backup in backups:
        conn = sqlite3.connect(backup)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    conn = sqlite3.connect(backups[-1])
    in_backup = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    conn.close()
    assert 0 < in_backup <= total

    # restore refuses while a server runs ...
    proc = ServeProcess(data)
    try:
        proc.wait_ready()
        result = run_cli("restore", str(backups[-1]), data_dir=data)
        assert result.returncode != 0 and "stop it" in result.stderr
    finally:
        proc.terminate()
    # ... and works once it is stopped
    result = run_cli("restore", str(backups[-1]), data_dir=data)
    assert result.returncode == 0, result.stderr
    restored = Store.in_folder(data)
    try:
        assert len(restored.list_messages(inbox.id)) == in_backup
        assert restored.verify_password("alice@example.org", "pw") is not None
    finally:
        restored.close()


def test_restore_refuses_a_file_that_is_not_a_backup(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    result = run_cli("restore", str(junk), data_dir=tmp_path / "data")
    assert result.returncode != 0 and "not a" in result.stderr


def test_a_restored_store_keeps_its_dkim_keys_and_srs_secret(tmp_path):
    """Restoring onto a new box must not change the keys the domain's DNS publishes."""
    data = tmp_path / "data"
    assert run_cli("domain", "add", "example.org", data_dir=data).returncode == 0
    published = run_cli("dns", "example.org", data_dir=data).stdout
    assert "kotakpos-rsa._domainkey" in published
    assert run_cli("backup", str(tmp_path / "backup.sqlite"), data_dir=data).returncode == 0
    new_box = tmp_path / "new-box"
    assert run_cli("restore", str(tmp_path / "backup.sqlite"), data_dir=new_box).returncode == 0
    assert run_cli("dns", "example.org", data_dir=new_box).stdout == published
