"""Debian's sieve-connect against a live server: it puts, lists, activates and gets a script
over STARTTLS (verifying our certificate), and the active script then files mail that
arrives over SMTP, as an IMAP client sees it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import HOSTNAME, PASSWORD
from tests.mda_helpers import imap_folders, plain, send

pytestmark = pytest.mark.skipif(shutil.which("sieve-connect") is None,
                                reason="sieve-connect is not installed (.ci/run installs it)")

ALICE = "alice@example.org"
SCRIPT = ('require ["fileinto", "mailbox"];\n'
          'if header :contains "subject" "invoice" {\n'
          '  fileinto :create "Bills";\n'
          '}\n')


def sieve_connect(server, *args: str, password: str = PASSWORD) -> subprocess.CompletedProcess:
    """One sieve-connect run; the password comes on standard input (--passwordfd 0)."""
    command = ["sieve-connect", "--server", "127.0.0.1", "--port", str(server.port("managesieve")),
               "--user", ALICE, "--passwordfd", "0", "--tlscafile", server.cafile, "--tlshostname", HOSTNAME,
               "--authmech", "PLAIN", "--noclearauth", *args]
    return subprocess.run(command, input=password + "\n", capture_output=True, text=True, timeout=60)


def test_put_list_activate_get_then_the_script_files_mail(server, tmp_path):
    server.add_user(ALICE)
    local = tmp_path / "office.sieve"
    local.write_text(SCRIPT)
    put = sieve_connect(server, "--upload", "--localsieve", str(local), "--remotesieve", "office")
    assert put.returncode == 0, put.stderr
    listed = sieve_connect(server, "--list")
    assert listed.returncode == 0 and listed.stdout.split() == ['"office"'], listed
    activated = sieve_connect(server, "--activate", "--remotesieve", "office")
    assert activated.returncode == 0, activated.stderr
    assert sieve_connect(server, "--list").stdout.split() == ['"office"', "ACTIVE"]
    fetched = tmp_path / "fetched.sieve"
    got = sieve_connect(server, "--download", "--remotesieve", "office", "--localsieve", str(fetched))
    assert got.returncode == 0 and fetched.read_text() == SCRIPT, got.stderr

    send(server, plain(subject="Invoice 42"))
    send(server, plain(subject="lunch?"))
    folders = imap_folders(server, ALICE)
    assert folders["Bills"] == [b"Subject: Invoice 42"] and folders["INBOX"] == [b"Subject: lunch?"]


def test_a_wrong_password_or_an_invalid_script_is_refused(server, tmp_path):
    server.add_user(ALICE)
    refused = sieve_connect(server, "--list", password="wrong")
    assert refused.returncode != 0 and "Authentication failed" in refused.stderr
    bad = tmp_path / "bad.sieve"
    bad.write_text('require "fileinto";\nfileinto "Bills"\nkeep;\n')
    put = sieve_connect(server, "--upload", "--localsieve", str(bad), "--remotesieve", "bad")
    assert put.returncode != 0 and "line 3" in put.stderr + put.stdout, put
    assert sieve_connect(server, "--list").stdout.split() == []
