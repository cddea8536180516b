"""fetchmail (Debian's) against our POP3: keep, UIDL-based "new only", then delete.

fetchmail is what many small offices still run to pull mail into a local box, and
its "leave mail on the server" mode trusts UIDL to be stable: every message must
arrive exactly once however often it polls.
"""

import email
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.protocol.pop3_wire import HOSTNAME, deliver, inbox

ALICE = "alice@example.org"


class Fetchmail:
    """One user's fetchmail setup in a temp folder, delivering each message to a file."""

    def __init__(self, folder: Path, server, listener: str):
        self.folder = folder
        self.maildir = folder / "delivered"
        self.maildir.mkdir()
        mda = folder / "deliver.sh"
        mda.write_text(f'#!/bin/sh\nexec cat > "$(mktemp {self.maildir}/msg.XXXXXX)"\n')
        mda.chmod(0o700)
        # Implicit TLS on pop3s; on pop3 fetchmail must upgrade with STLS, since we
        # refuse passwords in plaintext (sslproto TLS1.2+ makes it insist on TLS).
        tls = "ssl" if listener == "pop3s" else 'sslproto "TLS1.2+"'
        self.rcfile = folder / "fetchmailrc"
        self.rcfile.write_text(
            "set no syslog\n"
            f"poll 127.0.0.1 with protocol POP3 port {server.port(listener)} uidl timeout 20\n"
            f'  user "{ALICE}" there with password "{PASSWORD}" is "{os.environ.get("USER", "root")}" here\n'
            f'  {tls} sslcertck sslcertfile "{server.cafile}" sslcommonname "{HOSTNAME}"\n'
            f'  mda "{mda}"\n'
        )
        self.rcfile.chmod(stat.S_IRUSR | stat.S_IWUSR)  # fetchmail refuses a readable rc file

    def run(self, *options: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, HOME=str(self.folder), FETCHMAILHOME=str(self.folder))
        return subprocess.run(
            ["fetchmail", "--fetchmailrc", str(self.rcfile), "--idfile", str(self.folder / "ids"),
             "--pidfile", str(self.folder / "pid"), "--verbose", *options],
            env=env, capture_output=True, text=True, timeout=60,
        )

    def subjects(self) -> list[str]:
        return sorted(email.message_from_bytes(path.read_bytes())["Subject"]
                      for path in self.maildir.iterdir())


def message(subject: str) -> bytes:
    return (f"From: bob@example.org\r\nTo: {ALICE}\r\nSubject: {subject}\r\n\r\n"
            "Hello.\r\n.A line that starts with a dot\r\n").encode()


@pytest.fixture
def fetchmail_binary():
    path = shutil.which("fetchmail")
    assert path, "fetchmail is not installed (.ci/run installs it from Debian)"
    return path


@pytest.mark.parametrize("listener", ["pop3", "pop3s"])
def test_keep_then_only_new_then_delete(server, tmp_path, fetchmail_binary, listener):
    user = server.add_user(ALICE)
    deliver(server, user, message("one"), message("two"))
    fm = Fetchmail(tmp_path, server, listener)

    first = fm.run("--keep")
    assert first.returncode == 0, first.stdout + first.stderr
    assert fm.subjects() == ["one", "two"]
    assert len(inbox(server, user)) == 2  # kept on the server

    # Polling again finds nothing new: UIDL told fetchmail what it already has.
    again = fm.run("--keep")
    assert again.returncode == 1, again.stdout + again.stderr  # 1: no new mail
    assert fm.subjects() == ["one", "two"]

    deliver(server, user, message("three"))
    third = fm.run("--keep")
    assert third.returncode == 0, third.stdout + third.stderr
    assert fm.subjects() == ["one", "three", "two"]

    # Without --keep (and --flush for what it fetched before) the server is emptied,
    # and still no message arrives twice.
    deliver(server, user, message("four"))
    last = fm.run("--nokeep", "--flush")
    assert last.returncode == 0, last.stdout + last.stderr
    assert fm.subjects() == ["four", "one", "three", "two"]
    assert inbox(server, user) == []


def test_the_dot_line_arrives_intact(server, tmp_path, fetchmail_binary):
    user = server.add_user(ALICE)
    deliver(server, user, message("dots"))
    fm = Fetchmail(tmp_path, server, "pop3s")
    result = fm.run("--keep")
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = fm.maildir.iterdir()
    assert b"\n.A line that starts with a dot" in path.read_bytes()
    assert b"..A line" not in path.read_bytes()
