"""Mail that ``kotakpos import`` or ``restore --user`` writes while the server runs is
seen at once by the running server's IMAP and POP3 sessions (the store's change journal,
and the CLI's poke over the admin socket)."""

from __future__ import annotations

import imaplib
import poplib
import subprocess
import sys
import time

from appliance.migrate import backup
from tests.conftest import PASSWORD
from tests.protocol.imapconv import Conversation

ADDRESS = "bob@example.org"


def kotakpos(data_dir, *args) -> str:
    """The real command in its own process, as an admin runs it beside the server."""
    done = subprocess.run([sys.executable, "-m", "appliance", "--data", str(data_dir), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def mbox(path, count: int, start: int = 0):
    path.write_bytes(b"".join(
        b"From ann@old.example Tue Nov 14 22:13:20 2023\nFrom: ann@old.example\nSubject: old %d\n\nBody %d\n\n"
        % (n, n) for n in range(start, start + count)))
    return path


def imap_login(srv) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=srv.tls_context(), timeout=10)
    client.login(ADDRESS, PASSWORD)
    return client


def select_and_status(srv) -> tuple[int, int]:
    """(EXISTS after SELECT INBOX, MESSAGES of STATUS INBOX) from one new session."""
    client = imap_login(srv)
    try:
        status = client.status("INBOX", "(MESSAGES)")[1][0]
        exists = int(client.select("INBOX")[1][0])
        return exists, int(status.split(b"MESSAGES ")[1].rstrip(b")"))
    finally:
        client.logout()


def pop3_count(srv) -> int:
    client = poplib.POP3_SSL("127.0.0.1", srv.port("pop3s"), context=srv.tls_context(), timeout=10)
    try:
        client.user(ADDRESS)
        client.pass_(PASSWORD)
        return client.stat()[0]
    finally:
        client.quit()


def start_idle(srv) -> Conversation:
    c = Conversation.open(srv)
    c.transact("OK", f'LOGIN {ADDRESS} "{PASSWORD}"')
    c.transact("OK", "SELECT INBOX")
    c.send("i1 IDLE")
    assert c.line().startswith(b"+")
    return c


def test_import_beside_the_server_is_seen_at_once_by_imap_idle_and_pop3(make_server, tmp_path):
    srv = make_server()
    user = srv.add_user(ADDRESS)
    inbox = srv.store.get_mailbox(user.id, "INBOX")
    srv.store.append(user.id, inbox.id, b"Subject: already here\r\n\r\nhi\r\n")
    assert select_and_status(srv) == (1, 1)  # the server now keeps INBOX's SELECT snapshot
    idler = start_idle(srv)

    out = kotakpos(srv.data_dir, "import", "mbox", str(mbox(tmp_path / "old.mbox", 6)),
                   "--to", ADDRESS, "--folder", "INBOX")
    assert "6 copied" in out
    # no waiting: the command returns once the server has heard of its commits
    assert select_and_status(srv) == (7, 7)
    assert pop3_count(srv) == 7
    idler.sock.settimeout(5)
    assert idler.line() == b"* 7 EXISTS"
    idler.send("DONE")


def test_restore_of_one_user_beside_the_server_is_seen_at_once(make_server, tmp_path):
    srv = make_server(backup={"interval": 0})
    user = srv.add_user(ADDRESS)
    inbox = srv.store.get_mailbox(user.id, "INBOX")
    for n in range(4):
        srv.store.append(user.id, inbox.id, b"Subject: kept %d\r\n\r\nhi\r\n" % n)
    snapshot = backup.take(srv.store, tmp_path).path
    srv.store.delete_messages(inbox.id, [r.uid for r in srv.store.list_messages(inbox.id)][:3])
    assert select_and_status(srv) == (1, 1)
    idler = start_idle(srv)

    assert "3 copied" in kotakpos(srv.data_dir, "restore", str(snapshot), "--user", ADDRESS)
    assert select_and_status(srv) == (4, 4)
    assert pop3_count(srv) == 4
    idler.sock.settimeout(5)
    assert idler.line() == b"* 4 EXISTS"
    idler.send("DONE")


def test_a_writer_that_does_not_poke_is_heard_within_seconds(make_server):
    """Another process that writes without telling the server (here: a second Store on the
    file, which makes no admin call) is still heard by the server's safety check."""
    from appliance.store import Store
    srv = make_server()
    user = srv.add_user(ADDRESS)
    assert select_and_status(srv) == (0, 0)
    other = Store.in_folder(srv.data_dir)
    try:
        other.append(user.id, other.get_mailbox(user.id, "INBOX").id, b"Subject: quiet\r\n\r\nhi\r\n")
    finally:
        other.close()
    deadline = time.monotonic() + 5
    while select_and_status(srv) != (1, 1):
        assert time.monotonic() < deadline, "the server never heard of the other process's commit"
        time.sleep(0.1)
