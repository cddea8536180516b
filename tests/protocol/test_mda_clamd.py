"""clamd from Debian (clamav-daemon), started here with a one-signature database and no
downloads (freshclam never runs), scanning mail received by SMTP through INSTREAM."""

import shutil
import smtplib
import subprocess
import time

import pytest

from appliance.mda.clamd import Client, ClamdError
from tests.mda_helpers import folder, plain, send, wait_for, with_attachment

ALICE = "alice@example.org"
MARKER = b"KOTAKPOS-CUSTOM-TEST-SIGNATURE-7f3a"

pytestmark = pytest.mark.skipif(shutil.which("clamd") is None, reason="clamd (Debian clamav-daemon) is not installed")


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    folder_ = tmp_path_factory.mktemp("clamd")
    (folder_ / "db").mkdir()
    # An extended signature (.ndb): name, any file type, any offset, the marker's bytes in hex.
    (folder_ / "db" / "kotakpos.ndb").write_text(f"Kotakpos.Test.Signature:0:*:{MARKER.hex()}\n")
    socket_path = folder_ / "clamd.sock"
    (folder_ / "clamd.conf").write_text(
        f"LocalSocket {socket_path}\nDatabaseDirectory {folder_ / 'db'}\nForeground yes\n"
        f"LogFile {folder_ / 'clamd.log'}\n")
    process = subprocess.Popen(["clamd", "-c", str(folder_ / "clamd.conf")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not socket_path.exists():
        assert process.poll() is None and time.monotonic() < deadline, "clamd did not start"
        time.sleep(0.05)
    yield f"unix:{socket_path}"
    process.terminate()
    process.wait(10)


def test_client_finds_the_custom_signature(clamd):
    client = Client(clamd, 10)
    assert client.scan(b"some text " + MARKER + b" more text") == "Kotakpos.Test.Signature.UNOFFICIAL"
    assert client.scan(b"nothing to see") is None


def test_infected_attachment_refused_at_data(make_server, clamd):
    server = make_server(mda={"clamd": clamd})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(server, with_attachment("notes.txt", b"hello " + MARKER))
    assert e.value.smtp_code == 554 and e.value.smtp_error.startswith(b"5.7.0")
    send(server, plain(subject="clean"))
    assert [b"Subject: clean" in m for m in folder(server, ALICE)] == [True]
    wait_for(lambda: server.stats().get("mda.virus") == 1, what="the virus counted")


def test_unreachable_clamd_delivers_and_counts(make_server, tmp_path):
    server = make_server(mda={"clamd": f"unix:{tmp_path / 'no-such.sock'}"})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    send(server, with_attachment("notes.txt", b"hello " + MARKER))
    assert len(folder(server, ALICE)) == 1
    wait_for(lambda: server.stats().get("mda.clamd_error") == 1, what="the clamd error counted")
    with pytest.raises(ClamdError):
        Client(f"unix:{tmp_path / 'no-such.sock'}", 1).scan(b"x")
