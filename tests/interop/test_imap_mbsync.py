"""mbsync (isync) syncing a whole account both ways: folders, messages, flags, expunges."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.protocol.imapconv import deliver, message, session

pytestmark = pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync (mbsync) is not installed")


def write_config(tmp_path: Path, server, listener: str) -> Path:
    maildir = tmp_path / "mail"
    maildir.mkdir(exist_ok=True)
    tls = "IMAPS" if listener == "imaps" else "STARTTLS"
    rc = tmp_path / "mbsyncrc"
    # "localhost": isync 1.4 matches the certificate by DNS name only (the cert lists it)
    rc.write_text(f"""
IMAPAccount kotak
Host localhost
Port {server.port(listener)}
User alice@example.org
Pass "{PASSWORD}"
SSLType {tls}
CertificateFile {server.cafile}
AuthMechs PLAIN

IMAPStore remote
Account kotak

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel everything
Far :remote:
Near :local:
Patterns *
Create Both
Remove Both
Expunge Both
SyncState *
""")
    return rc


def mbsync(rc: Path) -> str:
    result = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def maildir_files(folder: Path) -> list[Path]:
    return sorted((folder / "cur").glob("*")) + sorted((folder / "new").glob("*"))


@pytest.mark.parametrize("listener", ["imaps", "imap"])
def test_mbsync_syncs_both_ways(server, tmp_path, listener):
    server.add_user("alice@example.org")
    deliver(server, "alice@example.org", message("from the server", body="server side\r\n"))
    deliver(server, "alice@example.org", message("to be flagged"))
    rc = write_config(tmp_path, server, listener)
    mbsync(rc)
    maildir = tmp_path / "mail"
    inbox = maildir_files(maildir / "INBOX")
    assert len(inbox) == 2
    assert any(b"server side" in p.read_bytes() for p in inbox)
    assert (maildir / "Sent").is_dir() and (maildir / "Archive").is_dir()

    # client side: a new folder with a message, a flag, a deletion
    local = maildir / "Clients" / "ACME"
    for sub in ("cur", "new", "tmp"):
        (local / sub).mkdir(parents=True)
    (local / "cur" / "1700000000.1.host:2,S").write_bytes(message("written locally"))
    flagged = next(p for p in inbox if b"to be flagged" in p.read_bytes())
    flagged.rename(flagged.with_name(flagged.name.split(":2,")[0] + ":2,F"))
    doomed = next(p for p in inbox if b"server side" in p.read_bytes())
    doomed.unlink()
    mbsync(rc)

    conv = session(server)
    conv.transact("OK", "SELECT Clients/ACME")
    lines = [l for l in conv.transact("OK", "FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])") if b"FETCH" in l]
    assert len(lines) == 1 and b"\\Seen" in lines[0] and b"written locally" in lines[0]
    conv.transact("OK", "SELECT INBOX")
    lines = [l for l in conv.transact("OK", "FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])") if b"FETCH" in l]
    assert len(lines) == 1 and b"\\Flagged" in lines[0] and b"to be flagged" in lines[0]

    # server side: flag, expunge and a new folder travel back
    conv.transact("OK", "STORE 1 +FLAGS (\\Seen)")
    conv.transact("OK", "CREATE Projects")
    deliver(server, "alice@example.org", message("project plan"), "Projects")
    conv.transact("OK", "SELECT Clients/ACME")
    conv.transact("OK", "STORE 1 +FLAGS (\\Deleted)")
    conv.transact("OK", "EXPUNGE")
    mbsync(rc)
    (name,) = [p.name for p in maildir_files(maildir / "INBOX")]
    assert name.endswith(":2,FS")
    assert maildir_files(local) == []
    (plan,) = maildir_files(maildir / "Projects")
    assert b"project plan" in plan.read_bytes()
    # a second run with nothing new changes nothing
    mbsync(rc)
    assert len(maildir_files(maildir / "INBOX")) == 1
