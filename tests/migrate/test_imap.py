"""kotakpos import imap from a second Kotakpos instance over IMAPS."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from tests.migrate.fixtures import BASE, DAY, cli, folder_contents


def message(n: int) -> bytes:
    return b"From: ann@old.example\r\nSubject: remote %d\r\nMessage-ID: <r%d@old.example>\r\n\r\nText %d.\r\n" % (n, n, n)


@pytest.fixture
def remote(make_server):
    """The old server: INBOX, "Sent Items" (\\Sent), Lists/Python and a non-ASCII folder, with flags and dates."""
    srv = make_server()
    user = srv.add_user("ann@old.example")
    store = srv.store
    store.rename_mailbox(user.id, "Sent", "Sent Items")
    for name in ("Lists/Python", "Büro"):
        store.create_mailbox(user.id, name)
    content = {
        "INBOX": [(message(1), {"\\Seen", "\\Flagged"}), (message(2), {"$Important", "\\Answered"}), (message(3), set())],
        "Sent Items": [(message(4), {"\\Seen"})],
        "Lists/Python": [(message(5), {"\\Seen", "\\Deleted"})],
        "Büro": [(message(6), {"\\Draft"})],
    }
    n = 0
    for name, messages in content.items():
        mb = store.get_mailbox(user.id, name)
        for raw, flags in messages:
            store.append(user.id, mb.id, raw, flags, BASE + n * DAY)
            n += 1
    srv.remote_content = content
    return srv


def run_import(local, remote, *extra, code=0):
    return cli(local, "import", "imap", "--host", "127.0.0.1", "--port", str(remote.port("imaps")), "--tls",
               "--user", "ann@old.example", "--password-stdin", "--to", "bob@example.org", *(extra or ("--cafile", remote.cafile)),
               input=PASSWORD + "\n", code=code)


@pytest.fixture
def local(make_server, remote):
    srv = make_server()
    srv.add_user("bob@example.org")
    return srv


def test_every_folder_with_flags_and_dates_then_only_what_is_new(local, remote):
    out = run_import(local.data_dir, remote, "--cafile", remote.cafile)
    assert "9 folders: 6 copied, 0 already there, 0 failed" in out
    got = folder_contents(local.store, "bob@example.org")
    renamed = {"Sent Items": "Sent"}
    expected = {}
    index = 0
    for name in remote.remote_content:
        expected[renamed.get(name, name)] = [(raw, flags, BASE + (index + k) * DAY)
                                            for k, (raw, flags) in enumerate(remote.remote_content[name])]
        index += len(remote.remote_content[name])
    assert got == expected
    user = local.store.get_user("bob@example.org")
    sent = [mb.name for mb in local.store.list_mailboxes(user.id) if mb.special_use == "\\Sent"]
    assert sent == ["Sent"]

    assert "0 copied, 0 already there, 0 failed" in run_import(local.data_dir, remote)

    ann = remote.store.get_user("ann@old.example")
    remote.store.append(ann.id, remote.store.get_mailbox(ann.id, "Lists/Python").id, message(7), {"\\Seen"}, BASE)
    assert "9 folders: 1 copied, 0 already there" in run_import(local.data_dir, remote)
    assert len(folder_contents(local.store, "bob@example.org")["Lists/Python"]) == 2


def test_a_failing_message_is_named_the_rest_go_on_and_a_later_run_fetches_it(local, remote):
    local.store.set_quota("bob@example.org", len(message(1)) * 2 + 10)
    out = run_import(local.data_dir, remote, code=1)
    assert "failed: INBOX UID 3: quota exceeded" in out
    assert "2 copied" in out and "4 failed" in out
    local.store.set_quota("bob@example.org", 0)
    out = run_import(local.data_dir, remote)
    assert "4 copied, 2 already there, 0 failed" in out
    assert sum(len(v) for v in folder_contents(local.store, "bob@example.org").values()) == 6


def test_the_certificate_is_checked_unless_told_otherwise(local, remote):
    out = run_import(local.data_dir, remote, "--tls", code=1)
    assert "cannot log in to 127.0.0.1" in out and "certificate" in out.lower()
    assert "6 copied" in run_import(local.data_dir, remote, "--insecure")


def test_wrong_password_is_reported(local, remote):
    out = cli(local.data_dir, "import", "imap", "--host", "127.0.0.1", "--port", str(remote.port("imap")), "--starttls",
              "--insecure", "--user", "ann@old.example", "--password-stdin", "--to", "bob@example.org",
              input="wrong\n", code=1)
    assert "cannot log in" in out


def test_a_client_watching_the_inbox_sees_the_imported_mail_at_once(local, remote):
    import imaplib
    client = imaplib.IMAP4_SSL("127.0.0.1", local.port("imaps"), ssl_context=local.tls_context(), timeout=10)
    try:
        client.login("bob@example.org", PASSWORD)
        assert client.select("INBOX")[1] == [b"0"]
        run_import(local.data_dir, remote)
        client.noop()
        assert client.response("EXISTS")[1][-1] == b"3"
    finally:
        client.logout()
