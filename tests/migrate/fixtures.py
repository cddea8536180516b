"""Mail folders as Dovecot leaves them, written by the tests with known flags and dates."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from appliance.cli import main
from appliance.store import Store

DAY = 86400
BASE = 1_700_000_000  # 2023-11-14, a fixed internal date


def message(n: int, extra: bytes = b"") -> bytes:
    return (b"From: Ann <ann@old.example>\nTo: bob@example.org\nSubject: message %d\n"
            b"Message-ID: <%d@old.example>\n\nHello %d.\n" % (n, n, n)) + extra


# Lines that an mbox must quote: they come back unchanged.
TRICKY = b"From the start of a line\n>From already quoted\n\nFrom after a blank line\n"


def write_maildir(root: Path) -> dict[str, list[tuple[bytes, set[str], int]]]:
    """A Maildir++ tree: INBOX (cur and new, keywords), Sent, Work/Projects. Returns what it holds."""
    expected = {
        "INBOX": [(message(1), {"\\Seen", "\\Flagged"}, BASE), (message(2, TRICKY), {"\\Answered", "\\Seen", "$Important"}, BASE + DAY),
                  (message(3), {"\\Draft", "\\Deleted", "work"}, BASE + 2 * DAY), (message(4), set(), BASE + 3 * DAY)],
        "Sent": [(message(5), {"\\Seen"}, BASE + 4 * DAY)],
        "Work/Projects": [(message(6), {"$Forwarded"}, BASE + 5 * DAY)],
    }
    names = {"INBOX": [("cur", "FS"), ("cur", "RSa"), ("cur", "DTb"), ("new", None)],
             "Sent": [("cur", "S")], "Work/Projects": [("cur", "P")]}
    for folder, messages in expected.items():
        path = root if folder == "INBOX" else root / ("." + folder.replace("/", "."))
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        if folder == "INBOX":
            (path / "dovecot-keywords").write_text("0 $Important\n1 work\n")
        for (raw, _, date), (sub, info) in zip(messages, names[folder]):
            name = f"{date}.M{date % 1000}P42.oldhost,S={len(raw)}" + (f":2,{info}" if info is not None else "")
            (path / sub / name).write_bytes(raw)
            os.utime(path / sub / name, (date, date))
    return expected


def write_mbox_tree(root: Path) -> dict[str, list[tuple[bytes, set[str], int]]]:
    """inbox and Archive/2023.mbox as mutt or Dovecot write them, flags in Status/X-Status/X-Keywords."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "inbox").write_bytes(
        b"From ann@old.example Tue Nov 14 22:13:20 2023\n"
        b"From: Ann <ann@old.example>\nSubject: one\nStatus: RO\nX-Status: AF\nX-Keywords: $Label1 todo\n\n"
        b"Body one\n>From quoted in the file\n>>From twice\n\n"
        b"From ann@old.example Wed Nov 15 22:13:20 2023\n"
        b"From: Ann <ann@old.example>\nSubject: two\nStatus: O\n\nBody two\n\n")
    (root / "Archive").mkdir()
    (root / "Archive" / "2023.mbox").write_bytes(
        b"From MAILER-DAEMON Thu Nov 16 22:13:20 2023\nSubject: three\nX-Status: T\n\nBody three\n\n")
    return {
        "INBOX": [(b"From: Ann <ann@old.example>\nSubject: one\n\nBody one\nFrom quoted in the file\n>From twice\n",
                   {"\\Seen", "\\Answered", "\\Flagged", "$Label1", "todo"}, BASE),
                  (b"From: Ann <ann@old.example>\nSubject: two\n\nBody two\n", set(), BASE + DAY)],
        "Archive/2023": [(b"Subject: three\n\nBody three\n", {"\\Draft"}, BASE + 2 * DAY)],
    }


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\n", b"\r\n")


def folder_contents(store: Store, address: str) -> dict[str, list[tuple[bytes, set[str], int]]]:
    """Every non-empty folder's messages in UID order: (bytes, flags, internal date in seconds)."""
    user = store.get_user(address)
    result = {}
    for mb in store.list_mailboxes(user.id):
        rows = store.list_messages(mb.id)
        if rows:
            result[mb.name] = [(store.get_raw(r.blob_id), set(r.flags), int(r.internaldate)) for r in rows]
    return result


def cli(data: Path, *args: str, input: str | None = None, code: int = 0):
    result = CliRunner().invoke(main, ["--data", str(data), *args], input=input, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def new_user(data: Path, address: str = "bob@example.org") -> None:
    store = Store.in_folder(data)
    try:
        domain = address.rpartition("@")[2]
        if not store.is_local_domain(domain):
            store.add_domain(domain)
        store.add_user(address, "pw")
    finally:
        store.close()
