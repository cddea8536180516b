"""Python's imaplib and imapclient (PyPI) against the server, the way scripts use them."""

import imaplib
import time

import imapclient
from imapclient.imapclient import JUNK, SENT, TRASH

from tests.conftest import PASSWORD
from tests.protocol.imapconv import deliver, message


def test_imaplib_starttls_login_select_fetch_store_expunge(server):
    server.add_user("alice@example.org")
    deliver(server, "alice@example.org", message("first"))
    deliver(server, "alice@example.org", message("second"))
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as m:
        assert "LOGINDISABLED" in m.capabilities
        m.starttls(ssl_context=server.tls_context())
        m.login("alice@example.org", PASSWORD)
        typ, data = m.select("INBOX")
        assert (typ, data) == ("OK", [b"2"])
        typ, data = m.fetch("1:2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [part[1] for part in data if isinstance(part, tuple)]
        assert subjects == [b"Subject: first\r\n\r\n", b"Subject: second\r\n\r\n"]
        assert m.search(None, "SUBJECT", "second") == ("OK", [b"2"])
        m.store("1", "+FLAGS", "\\Deleted")
        typ, data = m.expunge()
        assert (typ, data) == ("OK", [b"1"])
        assert m.status("INBOX", "(MESSAGES UNSEEN)") == ("OK", [b'"INBOX" (MESSAGES 1 UNSEEN 1)'])
        m.close()
        m.logout()


def test_imaplib_append_create_rename_list(server):
    server.add_user("alice@example.org")
    with imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=server.tls_context()) as m:
        m.login("alice@example.org", PASSWORD)
        assert m.create("Reports/2024")[0] == "OK"
        typ, data = m.append("Reports/2024", "(\\Seen)", imaplib.Time2Internaldate(time.time()),
                             message("quarterly"))
        assert typ == "OK" and b"APPENDUID" in data[0]
        assert m.rename("Reports", '"Old reports"')[0] == "OK"
        typ, data = m.list('""', '"Old reports/*"')
        assert data == [b'(\\HasNoChildren) "/" "Old reports/2024"']
        m.select('"Old reports/2024"', readonly=True)
        assert m.uid("SEARCH", "SEEN") == ("OK", [b"1"])
        m.logout()


def test_imapclient_common_paths(server):
    server.add_user("alice@example.org")
    deliver(server, "alice@example.org", message("hello", body="Meeting moved to 3pm.\r\n"))
    client = imapclient.IMAPClient("127.0.0.1", port=server.port("imaps"), ssl=True,
                                   ssl_context=server.tls_context(), timeout=10)
    client.login("alice@example.org", PASSWORD)
    assert client.has_capability("IDLE") and client.has_capability("MOVE")
    folders = {name: flags for flags, _, name in client.list_folders()}
    assert SENT in folders["Sent"] and TRASH in folders["Trash"]
    assert client.find_special_folder(JUNK) == "Junk"
    info = client.select_folder("INBOX")
    assert info[b"EXISTS"] == 1 and info[b"UIDNEXT"] == 2
    uids = client.search(["TEXT", "3pm"])
    assert uids == [1]
    data = client.fetch(uids, ["ENVELOPE", "FLAGS", "RFC822.SIZE", "BODY.PEEK[TEXT]"])
    assert data[1][b"ENVELOPE"].subject == b"hello"
    assert data[1][b"BODY[TEXT]"] == b"Meeting moved to 3pm.\r\n"
    client.add_flags(uids, [imapclient.SEEN, b"$Done"])
    assert set(client.get_flags(uids)[1]) >= {b"\\Seen", b"$Done"}
    client.move(uids, "Archive")
    assert client.folder_status("Archive", ["MESSAGES"])[b"MESSAGES"] == 1
    # IDLE with imapclient: a delivery is pushed while it waits
    client.idle()
    deliver(server, "alice@example.org", message("pushed"))
    responses = client.idle_check(timeout=5)
    client.idle_done()
    assert (2, b"EXISTS") in responses or (1, b"EXISTS") in responses
    assert client.get_quota_root("INBOX")[0].mailbox == "INBOX"
    client.logout()


def test_imapclient_condstore(server):
    server.add_user("alice@example.org")
    deliver(server, "alice@example.org", message("a"))
    client = imapclient.IMAPClient("127.0.0.1", port=server.port("imaps"), ssl=True,
                                   ssl_context=server.tls_context(), timeout=10)
    client.login("alice@example.org", PASSWORD)
    info = client.select_folder("INBOX")
    modseq = info[b"HIGHESTMODSEQ"]
    client.set_flags([1], [imapclient.FLAGGED])
    changed = client.fetch([1], ["FLAGS"], modifiers=[f"CHANGEDSINCE {modseq}"])
    assert changed[1][b"MODSEQ"][0] > modseq
    client.logout()


def test_imaplib_with_utf8_accept_uses_utf8_mailbox_names(server):
    server.add_user("alice@example.org")
    with imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=server.tls_context()) as m:
        m.login("alice@example.org", PASSWORD)
        assert b"UTF8=ACCEPT" in m.capability()[1][0].split()
        assert m.create('"Caf&AOk-/Rapports 2024"')[0] == "OK"  # before ENABLE: modified UTF-7
        assert m.list('""', "Caf*")[1][0] == b'(\\HasChildren) "/" "Caf&AOk-"'
        m.enable("UTF8=ACCEPT")  # imaplib now sends and reads UTF-8
        typ, data = m.list('""', "Café/*")
        assert data == ['(\\HasNoChildren) "/" "Café/Rapports 2024"'.encode()]
        raw = "From: Zoë <zoe@example.org>\r\nSubject: Grüße\r\n\r\nHallo.\r\n".encode()
        typ, data = m.append('"Café/Rapports 2024"', None, None, raw)
        assert typ == "OK" and b"APPENDUID" in data[0]
        assert m.status('"Café/Rapports 2024"', "(MESSAGES)")[1] == ['"Café/Rapports 2024" (MESSAGES 1)'.encode()]
        m.select('"Café/Rapports 2024"')
        assert m.search(None, "SUBJECT", '"Grüße"'.encode()) == ("OK", [b"1"])
        assert m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1] == "Subject: Grüße\r\n\r\n".encode()
        m.logout()
