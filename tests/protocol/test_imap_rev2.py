"""IMAP4rev2 (RFC 9051) beside IMAP4rev1: what changes after ENABLE IMAP4rev2, and what does not before."""

import imaplib

from tests.conftest import PASSWORD
from tests.protocol.imapconv import deliver, message, session


def test_rev2_is_advertised_and_enabled(server):
    conv = session(server)
    assert b"IMAP4rev1" in conv.greeting and b"IMAP4rev2" in conv.greeting
    assert conv.transact("OK", "ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2"]
    assert conv.transact("OK", "ENABLE IMAP4rev2") == [b"* ENABLED"]  # RFC 5161 §3.1: only newly enabled ones


def test_rev2_select_search_fetch_and_status(server):
    conv = session(server)
    deliver(server, "alice@example.org", message("one"))
    deliver(server, "alice@example.org", message("two"))
    conv.transact("OK", "CREATE Projects")
    conv.transact("OK", "ENABLE IMAP4rev2")
    lines = conv.transact("OK", "SELECT INBOX")
    assert b"* 2 EXISTS" in lines and b'* LIST () "/" "INBOX"' in lines
    assert not any(b"RECENT" in line or b"[UNSEEN" in line or b"\\Recent" in line for line in lines)
    (line,) = conv.transact("OK", "FETCH 1 FLAGS")
    assert line == b"* 1 FETCH (FLAGS ())"  # no \Recent in IMAP4rev2
    tag = f"t{conv.count + 1}"
    assert conv.transact("OK", "SEARCH ALL") == [b'* ESEARCH (TAG "%s") ALL 1:2' % tag.encode()]
    (line,) = conv.transact("OK", "UID SEARCH SUBJECT nothing-matches")
    assert line.endswith(b") UID")
    deliver(server, "alice@example.org", message("three"))
    told = []
    for _ in range(100):  # the delivery's event may reach the session a moment after deliver returns
        told += conv.transact("OK", "NOOP")
        if told:
            break
    assert told == [b"* 3 EXISTS"]  # and no RECENT
    conv.transact("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    (line,) = conv.transact("OK", "STATUS Projects (MESSAGES DELETED SIZE)")
    assert line == b'* STATUS "Projects" (MESSAGES 0 DELETED 0 SIZE 0)'
    lines = conv.transact("OK", "SELECT Projects")
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed"
    conv.transact("OK", "UNSELECT")
    (line,) = conv.transact("OK", "STATUS INBOX (DELETED)")
    assert line == b'* STATUS "INBOX" (DELETED 1)'


def test_rev2_refuses_what_rfc9051_took_out_with_recent(server):
    # RFC 9051 Appendix E: no \Recent, so no RECENT/NEW/OLD search keys and no RECENT status
    # item in its grammar; a rev1 session keeps them
    deliver(server, "alice@example.org", message("one"))
    conv = session(server)
    conv.transact("OK", "SELECT INBOX")
    assert conv.transact("OK", "SEARCH NEW") == [b"* SEARCH 1"]
    assert conv.transact("OK", "STATUS Drafts (RECENT)") == [b'* STATUS "Drafts" (RECENT 0)']
    conv = session(server)
    conv.transact("OK", "ENABLE IMAP4rev2")
    conv.transact("OK", "SELECT INBOX")
    for command in ("SEARCH NEW", "UID SEARCH OR RECENT SEEN", "SEARCH NOT OLD", "SORT (ARRIVAL) UTF-8 RECENT",
                    "THREAD REFERENCES UTF-8 NEW", "STATUS Drafts (MESSAGES RECENT)",
                    'LIST "" "*" RETURN (STATUS (RECENT))'):
        assert conv.transact("BAD", command) == []
    assert conv.transact("OK", "UID SEARCH OR UNSEEN SEEN") == [b'* ESEARCH (TAG "t%d") UID ALL 1' % conv.count]


def test_rev2_list_status_subscribed_nonexistent_and_utf8_names(server):
    conv = session(server)
    deliver(server, "alice@example.org", message("one"))
    conv.transact("OK", "ENABLE IMAP4rev2")
    conv.transact("OK", 'CREATE "Entwürfe"')
    conv.transact("OK", "SUBSCRIBE INBOX")
    conv.transact("OK", "CREATE Gone")
    conv.transact("OK", "SUBSCRIBE Gone")
    conv.transact("OK", "DELETE Gone")
    lines = conv.transact("OK", 'LIST "" "*" RETURN (SUBSCRIBED STATUS (MESSAGES))')
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" "INBOX"' in lines
    assert b'* STATUS "INBOX" (MESSAGES 1)' in lines
    assert '* LIST (\\HasNoChildren) "/" "Entwürfe"'.encode() in lines  # UTF-8, not modified UTF-7
    lines = conv.transact("OK", 'LIST (SUBSCRIBED) "" "*"')
    assert b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"' in lines
    lines = conv.transact("OK", 'LSUB "" "*"')  # deprecated by RFC 9051, still answered
    assert b'* LSUB () "/" "INBOX"' in lines
    conv.transact("OK", "NAMESPACE")
    conv.transact("OK", "CREATE Parent/Child")
    conv.transact("NO", "DELETE Parent")
    assert b"[HASCHILDREN]" in conv.last


def test_rev1_clients_see_no_change(server):
    server.add_user("alice@example.org")
    deliver(server, "alice@example.org", message("first"))
    with imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=server.tls_context()) as m:
        m.login("alice@example.org", PASSWORD)
        assert "IMAP4REV1" in m.capabilities
        assert m.select("INBOX") == ("OK", [b"1"])
        assert m.untagged_responses.get("RECENT") == [b"1"]
        assert m.search(None, "ALL") == ("OK", [b"1"])
        typ, data = m.fetch("1", "(FLAGS)")
        assert typ == "OK" and b"\\Recent" in data[0]
        typ, data = m.list()
        assert typ == "OK" and b'(\\HasNoChildren) "/" "INBOX"' in data
        assert m.lsub()[0] == "OK"
        m.logout()
