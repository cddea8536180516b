"""Mailbox commands: CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST variants, LSUB, STATUS,
NAMESPACE, QUOTA, and isolation between users.

imaptest groups: list, listext, subscribe."""

from tests.protocol.imapconv import deliver, message, session


def names(lines: list[bytes]) -> list[bytes]:
    return [line.rsplit(b' "/" ', 1)[1] for line in lines if line.startswith(b"* LIST")]


def test_new_user_has_special_use_folders(server):
    conv = session(server)
    lines = conv.transact("OK", 'LIST "" "*"')
    assert b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"' in lines
    assert {b'"INBOX"', b'"Sent"', b'"Drafts"', b'"Trash"', b'"Junk"', b'"Archive"'} == set(names(lines))
    lines = conv.transact("OK", 'LIST (SPECIAL-USE) "" "*"')
    assert b'"INBOX"' not in names(lines) and len(lines) == 5
    assert conv.transact("OK", 'LIST "" ""') == [b'* LIST (\\Noselect) "/" ""']


def test_create_hierarchy_wildcards_and_children(server):
    conv = session(server)
    conv.transact("OK", "CREATE Projects/2024/Q1")
    conv.transact("OK", "CREATE Entw&APw-rfe/")  # trailing delimiter, modified UTF-7
    conv.transact("NO", "CREATE Projects")
    assert b"ALREADYEXISTS" in conv.last
    conv.transact("NO", "CREATE inbox")
    top = conv.transact("OK", 'LIST "" "%"')
    assert b'* LIST (\\HasChildren) "/" "Projects"' in top
    assert b'"Entw&APw-rfe"' in names(top) and b'"Projects/2024"' not in names(top)
    assert names(conv.transact("OK", 'LIST "Projects/" "%"')) == [b'"Projects/2024"']
    assert names(conv.transact("OK", 'LIST "" "Projects/*"')) == [b'"Projects/2024"', b'"Projects/2024/Q1"']
    assert names(conv.transact("OK", 'LIST "" "inbox"')) == [b'"INBOX"']


def test_delete_and_rename(server):
    conv = session(server)
    conv.transact("OK", "CREATE Old/Child")
    conv.transact("NO", "DELETE Old")  # has children
    conv.transact("NO", "DELETE INBOX")
    conv.transact("NO", "DELETE Nothing")
    deliver(server, "alice@example.org", message("keep me"), "Old/Child")
    conv.transact("OK", "SELECT Old/Child")
    (uid_line,) = [l for l in conv.transact("OK", "FETCH 1 UID") if b"FETCH" in l]
    conv.transact("OK", "RENAME Old New")
    conv.transact("NO", "SELECT Old/Child")
    conv.transact("OK", "SELECT New/Child")
    assert [l for l in conv.transact("OK", "FETCH 1 UID") if b"FETCH" in l] == [uid_line]  # UIDs kept
    conv.transact("NO", "RENAME Nothing Other")
    conv.transact("NO", "RENAME New Sent")
    conv.transact("OK", "DELETE New/Child")
    conv.transact("OK", "DELETE New")
    assert b'"New"' not in names(conv.transact("OK", 'LIST "" *'))


def test_rename_inbox_moves_its_messages(server):
    conv = session(server)
    deliver(server, "alice@example.org", message("one"))
    conv.transact("OK", "RENAME INBOX Saved")
    status = conv.transact("OK", "STATUS Saved (MESSAGES)")
    assert status == [b'* STATUS "Saved" (MESSAGES 1)']
    assert conv.transact("OK", "STATUS INBOX (MESSAGES)") == [b'* STATUS "INBOX" (MESSAGES 0)']


def test_subscriptions_lsub_and_list_extended(server):
    conv = session(server)
    conv.transact("OK", "CREATE Lists/python")
    conv.transact("OK", "SUBSCRIBE Lists/python")
    conv.transact("OK", "SUBSCRIBE INBOX")
    conv.transact("NO", "SUBSCRIBE Missing")
    assert conv.transact("OK", 'LSUB "" "Lists/*"') == [b'* LSUB () "/" "Lists/python"']
    assert conv.transact("OK", 'LSUB "" "IN%"') == [b'* LSUB () "/" "INBOX"']
    lines = conv.transact("OK", 'LIST (SUBSCRIBED) "" ("INBOX" "Lists/*")')
    assert lines == [b'* LIST (\\HasNoChildren \\Subscribed) "/" "INBOX"',
                     b'* LIST (\\HasNoChildren \\Subscribed) "/" "Lists/python"']
    lines = conv.transact("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert b'* LIST (\\HasChildren) "/" "Lists" ("CHILDINFO" ("SUBSCRIBED"))' in lines
    lines = conv.transact("OK", 'LIST "" "*" RETURN (SUBSCRIBED CHILDREN)')
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" "INBOX"' in lines
    assert b'* LIST (\\HasNoChildren \\Drafts \\Subscribed) "/" "Drafts"' in lines
    assert b'* LIST (\\HasChildren) "/" "Lists"' in lines
    conv.transact("OK", "DELETE Lists/python")
    lines = conv.transact("OK", 'LIST (SUBSCRIBED) "" "Lists/*"')
    assert lines == [b'* LIST (\\NonExistent \\Subscribed) "/" "Lists/python"']
    conv.transact("OK", "UNSUBSCRIBE Lists/python")
    assert conv.transact("OK", 'LSUB "" "Lists*"') == []


def test_status_and_list_status(server):
    conv = session(server)
    deliver(server, "alice@example.org", message("a"))
    deliver(server, "alice@example.org", message("b"))
    (line,) = conv.transact("OK", "STATUS INBOX (MESSAGES RECENT UNSEEN UIDNEXT HIGHESTMODSEQ SIZE UIDVALIDITY)")
    assert line.startswith(b'* STATUS "INBOX" (MESSAGES 2 RECENT 2 UNSEEN 2 UIDNEXT 3 HIGHESTMODSEQ ')
    conv.transact("NO", "STATUS Nowhere (MESSAGES)")
    lines = conv.transact("OK", 'LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN))')
    assert lines == [b'* LIST (\\HasNoChildren) "/" "INBOX"', b'* STATUS "INBOX" (MESSAGES 2 UNSEEN 2)']


def test_namespace_and_quota(server):
    server.add_user("quota@example.org", quota=10 * 1024 * 1024)
    conv = session(server, "quota@example.org")
    assert conv.transact("OK", "NAMESPACE") == [b'* NAMESPACE (("" "/")) NIL NIL']
    deliver(server, "quota@example.org", message("x", body="y" * 5000))
    lines = conv.transact("OK", "GETQUOTAROOT INBOX")
    assert lines[0] == b'* QUOTAROOT "INBOX" ""'
    assert lines[1].startswith(b'* QUOTA "" (STORAGE 6 10240)')
    assert conv.transact("OK", 'GETQUOTA ""') == lines[1:]
    big = b"Subject: big\r\n\r\n" + b"z" * (10 * 1024 * 1024)
    conv.send(b"a1 APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")
    _, tagged = conv.read_until("a1")
    assert tagged.startswith(b"a1 NO [OVERQUOTA]")
    unlimited = session(server, "free@example.org")
    assert unlimited.transact("OK", "GETQUOTAROOT INBOX") == [b'* QUOTAROOT "INBOX"']
    unlimited.transact("NO", 'GETQUOTA ""')


def test_users_see_only_their_own_mailboxes(server):
    deliver_to = server.add_user("bob@example.org")
    assert deliver_to
    deliver(server, "bob@example.org", message("bob's secret"))
    server.store.create_mailbox(server.store.get_user("bob@example.org").id, "Private")
    conv = session(server)
    for name in ("../bob", "x/../bob", "~bob", "#shared/x", "/etc", "a*b", "x%"):
        conv.transact("NO", f'CREATE "{name}"')
    conv.transact("OK", 'CREATE "..bob/x"')  # just a name inside alice's own tree
    listed = names(conv.transact("OK", 'LIST "" "*"'))
    assert b'"Private"' not in listed and b'"..bob/x"' in listed
    for cmd in ('SELECT "Private"', 'STATUS "Private" (MESSAGES)', 'SELECT "~bob/INBOX"',
                'SELECT "../bob/INBOX"', 'SELECT "#shared/bob"'):
        conv.transact("NO", cmd)
    assert conv.transact("OK", 'LIST "" "~bob*"') == []
    assert conv.transact("OK", 'LIST "../" "*"') == []
    conv.transact("OK", "SELECT INBOX")
    assert conv.transact("OK", "SEARCH TEXT secret") == [b"* SEARCH"]
    conv.transact("NO", f'CREATE "{"x" * 600}"')


def test_utf8_accept_switches_mailbox_names_to_utf8_for_that_session_only(server):
    conv = session(server)
    other = session(server)
    conv.transact("OK", "CREATE Entw&APw-rfe")
    assert conv.transact("OK", "ENABLE UTF8=ACCEPT") == [b"* ENABLED UTF8=ACCEPT"]
    assert names(conv.transact("OK", 'LIST "" "Entw*"')) == ['"Entwürfe"'.encode()]
    conv.transact("OK", "CREATE Entwürfe/Ärger".encode())
    conv.transact("OK", 'CREATE "Spaß & Co"'.encode())  # "&" is just a character now
    assert conv.transact("OK", 'STATUS "Entwürfe/Ärger" (MESSAGES)'.encode()) == \
        ['* STATUS "Entwürfe/Ärger" (MESSAGES 0)'.encode()]
    # another session, not enabled, sees the same folders in modified UTF-7
    assert set(names(other.transact("OK", 'LIST "" "*"'))) >= {
        b'"Entw&APw-rfe"', b'"Entw&APw-rfe/&AMQ-rger"', b'"Spa&AN8- &- Co"'}
    conv.transact("BAD", b'CREATE "\xff\xfe"')  # not UTF-8
    conv.transact("OK", "SELECT INBOX")
    conv.transact("BAD", "SEARCH CHARSET UTF-8 SUBJECT x")  # RFC 9755 §3: no CHARSET now
    assert conv.transact("OK", "SEARCH SUBJECT x") == [b"* SEARCH"]


def test_utf8_accept_append_of_a_message_with_utf8_headers(server):
    conv = session(server)
    conv.transact("OK", "ENABLE UTF8=ACCEPT")
    raw = "From: Zoë <zoë@example.org>\r\nSubject: Grüße\r\n\r\nHallo.\r\n".encode()
    conv.transact("OK", b"APPEND INBOX UTF8 (~{%d+}\r\n" % len(raw) + raw + b")")
    assert b"APPENDUID" in conv.last
    conv.transact("OK", "SELECT INBOX")
    fetched = conv.transact("OK", "FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert fetched == [b"* 1 FETCH (FLAGS (\\Recent) BODY[HEADER.FIELDS (SUBJECT)] {20}\r\n"
                       + "Subject: Grüße\r\n\r\n".encode() + b")"]
    # ENABLE UTF8=ACCEPT is not CONDSTORE: no MODSEQ in FETCH responses
    [stored] = conv.transact("OK", "STORE 1 +FLAGS (\\Flagged)")
    assert b"\\Flagged" in stored and b"MODSEQ" not in stored
