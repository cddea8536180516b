"""kotakpos import/export of mbox and Maildir: flags, dates and bytes survive, runs resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.store import Store
from tests.migrate.fixtures import (cli, crlf, folder_contents, new_user, write_maildir, write_mbox_tree)


def contents(data: Path, address: str = "bob@example.org"):
    store = Store.in_folder(data)
    try:
        return folder_contents(store, address)
    finally:
        store.close()


def as_stored(expected):
    return {name: [(crlf(raw), flags, date) for raw, flags, date in msgs] for name, msgs in expected.items()}


def test_maildir_import_keeps_flags_keywords_dates_and_folders(tmp_path):
    expected = write_maildir(tmp_path / "Maildir")
    new_user(tmp_path / "data")
    out = cli(tmp_path / "data", "import", "maildir", str(tmp_path / "Maildir"), "--to", "bob@example.org")
    assert "3 folders: 6 copied, 0 already there, 0 failed" in out
    assert contents(tmp_path / "data") == as_stored(expected)

    out = cli(tmp_path / "data", "import", "maildir", str(tmp_path / "Maildir"), "--to", "bob@example.org")
    assert "0 copied, 6 already there" in out
    assert contents(tmp_path / "data") == as_stored(expected)


def test_imported_sent_folder_is_our_sent_folder(tmp_path):
    write_maildir(tmp_path / "Maildir")
    new_user(tmp_path / "data")
    cli(tmp_path / "data", "import", "maildir", str(tmp_path / "Maildir"), "--to", "bob@example.org", "--folder", "Sent")
    store = Store.in_folder(tmp_path / "data")
    try:
        user = store.get_user("bob@example.org")
        sent = [mb for mb in store.list_mailboxes(user.id) if mb.special_use == "\\Sent"]
        assert [mb.name for mb in sent] == ["Sent"] and len(store.list_messages(sent[0].id)) == 1
        assert "Work/Projects" not in {mb.name for mb in store.list_mailboxes(user.id)}
    finally:
        store.close()


def test_mbox_import_reads_status_headers_and_unquotes_from_lines(tmp_path):
    expected = write_mbox_tree(tmp_path / "mail")
    new_user(tmp_path / "data")
    out = cli(tmp_path / "data", "import", "mbox", str(tmp_path / "mail"), "--to", "bob@example.org")
    assert "2 folders: 3 copied" in out
    assert contents(tmp_path / "data") == as_stored(expected)
    out = cli(tmp_path / "data", "import", "mbox", str(tmp_path / "mail" / "inbox"), "--to", "bob@example.org")
    assert "0 copied, 2 already there" in out


def test_single_mbox_file_goes_into_the_named_folder(tmp_path):
    write_mbox_tree(tmp_path / "mail")
    new_user(tmp_path / "data")
    cli(tmp_path / "data", "import", "mbox", str(tmp_path / "mail" / "inbox"), "--to", "bob@example.org",
        "--folder", "Old/Inbox")
    assert [len(v) for k, v in contents(tmp_path / "data").items() if k == "Old/Inbox"] == [2]


@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_export_then_import_round_trips_byte_for_byte(tmp_path, fmt):
    expected = write_maildir(tmp_path / "Maildir")
    new_user(tmp_path / "a")
    cli(tmp_path / "a", "import", "maildir", str(tmp_path / "Maildir"), "--to", "bob@example.org")
    out = cli(tmp_path / "a", "export", "bob@example.org", "--format", fmt, str(tmp_path / "out1"))
    assert "exported 6 messages" in out

    new_user(tmp_path / "b", "carol@example.net")
    cli(tmp_path / "b", "import", fmt, str(tmp_path / "out1"), "--to", "carol@example.net")
    assert contents(tmp_path / "b", "carol@example.net") == as_stored(expected)

    cli(tmp_path / "b", "export", "carol@example.net", "--format", fmt, str(tmp_path / "out2"))
    first, second = _files(tmp_path / "out1", fmt), _files(tmp_path / "out2", fmt)
    assert first == second and sum(1 for v in first.values() if v) == 3


def _files(root: Path, fmt: str):
    """mbox: path -> bytes. Maildir (names carry UIDs and the host): folder -> sorted (bytes, flags, mtime)."""
    if fmt == "mbox":
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    result = {}
    for p in root.rglob("*"):
        if p.is_file() and p.parent.name in ("cur", "new"):
            folder = str(p.parent.parent.relative_to(root))
            result.setdefault(folder, []).append((p.read_bytes(), p.name.rpartition(":2,")[2], int(p.stat().st_mtime)))
    return {k: sorted(v) for k, v in result.items()}


def test_export_of_one_folder_and_again_into_the_same_maildir(tmp_path):
    write_maildir(tmp_path / "Maildir")
    new_user(tmp_path / "data")
    cli(tmp_path / "data", "import", "maildir", str(tmp_path / "Maildir"), "--to", "bob@example.org")
    cli(tmp_path / "data", "export", "bob@example.org", "--format", "maildir", "--folder", "INBOX", str(tmp_path / "out"))
    assert "exported 0 messages" in cli(tmp_path / "data", "export", "bob@example.org", "--format", "maildir",
                                        "--folder", "INBOX", str(tmp_path / "out"))
    assert len(list((tmp_path / "out" / "cur").iterdir())) == 4
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_folder_names_never_escape_the_export_folder(tmp_path):
    new_user(tmp_path / "data")
    store = Store.in_folder(tmp_path / "data")
    user = store.get_user("bob@example.org")
    for name in ("../evil", ".hidden/x", "Ünïcode.with.dots"):
        mb = store.create_mailbox(user.id, name)
        store.append(user.id, mb.id, b"Subject: " + name.encode() + b"\r\n\r\nx\r\n")
    store.close()
    for fmt in ("mbox", "maildir"):
        cli(tmp_path / "data", "export", "bob@example.org", "--format", fmt, str(tmp_path / fmt))
        assert not (tmp_path / "evil").exists() and not (tmp_path / "evil.mbox").exists()
        new_user(tmp_path / f"back-{fmt}")
        cli(tmp_path / f"back-{fmt}", "import", fmt, str(tmp_path / fmt), "--to", "bob@example.org")
        assert set(contents(tmp_path / f"back-{fmt}")) == {"../evil", ".hidden/x", "Ünïcode.with.dots"}


def test_unknown_user_and_missing_folder_are_refused(tmp_path):
    write_maildir(tmp_path / "Maildir")
    new_user(tmp_path / "data")
    assert "no user" in cli(tmp_path / "data", "import", "maildir", str(tmp_path / "Maildir"), "--to", "x@example.org", code=1)
    assert "no Maildir folder Nope" in cli(tmp_path / "data", "import", "maildir", str(tmp_path / "Maildir"),
                                           "--to", "bob@example.org", "--folder", "Nope", code=1)


def test_a_message_over_quota_is_named_and_the_rest_go_on(tmp_path):
    write_maildir(tmp_path / "Maildir")
    new_user(tmp_path / "data")
    store = Store.in_folder(tmp_path / "data")
    store.set_quota("bob@example.org", 250)
    store.close()
    out = cli(tmp_path / "data", "import", "maildir", str(tmp_path / "Maildir"), "--to", "bob@example.org", code=1)
    assert "failed: Maildir/new/1700259200.M200P42.oldhost,S=105: quota exceeded" in out
    assert "2 copied, 0 already there, 4 failed" in out


def test_one_maildir_subfolder_keeps_its_name_or_goes_where_folder_says(tmp_path):
    write_maildir(tmp_path / "Maildir")
    new_user(tmp_path / "data")
    cli(tmp_path / "data", "import", "maildir", str(tmp_path / "Maildir" / ".Work.Projects"), "--to", "bob@example.org")
    cli(tmp_path / "data", "import", "maildir", str(tmp_path / "Maildir" / ".Sent"), "--to", "bob@example.org",
        "--folder", "Old/Sent")
    got = contents(tmp_path / "data")
    assert set(got) == {"Work/Projects", "Old/Sent"} and len(got["Old/Sent"]) == 1
