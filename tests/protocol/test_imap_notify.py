"""NOTIFY (RFC 5465): a second session changes things; the NOTIFY session hears of them without IDLE.

imaptest group: notify."""

import re

from tests.protocol.imapconv import deliver, message, session

SELECTED_AND_PERSONAL = ("NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)]) MessageExpunge"
                         " FlagChange)) (PERSONAL (MessageNew MessageExpunge FlagChange MailboxName"
                         " SubscriptionChange))")


def hear(conv, predicate, limit: int = 20) -> list[bytes]:
    """Untagged lines the server sends unasked, up to the first that satisfies ``predicate``."""
    lines = []
    for _ in range(limit):
        line = conv.line()
        lines.append(line)
        if predicate(line):
            return lines
    raise AssertionError(f"not heard: {lines}")


def test_notify_tells_of_other_sessions_changes_without_idle(server):
    watcher = session(server)
    deliver(server, "alice@example.org", message("old one"))
    watcher.transact("OK", "CREATE Work")
    watcher.transact("OK", "SELECT INBOX")
    assert b"NOTIFY" in b" ".join(watcher.transact("OK", "CAPABILITY"))
    watcher.transact("OK", SELECTED_AND_PERSONAL)
    other = session(server)

    # a new message in the selected mailbox: EXISTS and the asked-for FETCH, while the watcher is silent
    deliver(server, "alice@example.org", message("breaking news"))
    lines = hear(watcher, lambda line: b" FETCH " in line)
    assert b"* 2 EXISTS" in lines
    assert re.match(rb"\* 2 FETCH \(UID 2 BODY\[HEADER.FIELDS \(SUBJECT\)\] \{\d+\}\r\nSubject: breaking news",
                    lines[-1])

    # flags changed and a message expunged by the other session
    other.transact("OK", "SELECT INBOX")
    other.transact("OK", "STORE 1 +FLAGS (\\Deleted)")
    (line,) = hear(watcher, lambda line: b"FETCH" in line)
    assert b"FLAGS (\\Deleted" in line
    other.transact("OK", "EXPUNGE")
    assert hear(watcher, lambda line: b"EXPUNGE" in line) == [b"* 1 EXPUNGE"]

    # a message appended to a mailbox that is not selected: STATUS
    raw = message("filed")
    other.transact("OK", b"APPEND Work {%d+}\r\n" % len(raw) + raw + b"\r\n")
    (line,) = hear(watcher, lambda line: line.startswith(b"* STATUS"))
    assert re.fullmatch(rb'\* STATUS "Work" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)', line)

    # a mailbox created, renamed and deleted; a subscription
    other.transact("OK", "CREATE Plans")
    assert hear(watcher, lambda line: b"LIST" in line) == [b'* LIST () "/" "Plans"']
    other.transact("OK", "RENAME Plans Ideas")
    assert hear(watcher, lambda line: b"LIST" in line) == [b'* LIST () "/" "Ideas" ("OLDNAME" ("Plans"))']
    other.transact("OK", "SUBSCRIBE Ideas")
    assert hear(watcher, lambda line: b"LIST" in line) == [b'* LIST (\\Subscribed) "/" "Ideas"']
    other.transact("OK", "DELETE Ideas")
    assert hear(watcher, lambda line: b"LIST" in line) == [b'* LIST (\\NonExistent) "/" "Ideas"']

    # the watcher's own commands still work, and NOTIFY NONE ends the news
    watcher.transact("OK", "NOTIFY NONE")
    deliver(server, "alice@example.org", message("quiet"), mailbox="Work")
    other.transact("OK", "CREATE Later")
    assert watcher.transact("OK", "NOOP") == []  # Work is not selected: nothing to say without NOTIFY


def test_notify_set_status_filters_and_bad_events(server):
    conv = session(server)
    deliver(server, "alice@example.org", message("one"), mailbox="Sent")
    conv.transact("OK", "CREATE Lists/Python")
    (line,) = conv.transact("OK", "NOTIFY SET STATUS (MAILBOXES Sent (MessageNew MessageExpunge))")
    assert re.fullmatch(rb'\* STATUS "Sent" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+\)', line)
    (line,) = conv.transact("OK", "NOTIFY SET STATUS (MAILBOXES Sent (MessageNew MessageExpunge FlagChange))")
    assert re.fullmatch(rb'\* STATUS "Sent" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)', line)
    assert conv.transact("OK", "NOTIFY SET (MAILBOXES Sent (MessageNew MessageExpunge))") == []
    # only the mailboxes asked for are reported
    deliver(server, "alice@example.org", message("two"), mailbox="Lists/Python")
    deliver(server, "alice@example.org", message("three"), mailbox="Sent")
    (line,) = hear(conv, lambda line: line.startswith(b"* STATUS"))
    assert line.startswith(b'* STATUS "Sent" (MESSAGES 2 ')
    # FlagChange was not asked for: a flag change in Sent says nothing, the next new message does
    other = session(server)
    other.transact("OK", "SELECT Sent")
    other.transact("OK", "STORE 1 +FLAGS.SILENT (\\Flagged)")
    deliver(server, "alice@example.org", message("six"), mailbox="Sent")
    (line,) = hear(conv, lambda line: line.startswith(b"* STATUS"))
    assert line.startswith(b'* STATUS "Sent" (MESSAGES 3 ')
    conv.transact("OK", "NOTIFY SET (SUBTREE Lists (MessageNew MessageExpunge)) (INBOXES NONE)")
    deliver(server, "alice@example.org", message("four"))
    deliver(server, "alice@example.org", message("five"), mailbox="Lists/Python")
    (line,) = hear(conv, lambda line: line.startswith(b"* STATUS"))
    assert line.startswith(b'* STATUS "Lists/Python" (MESSAGES 2 ')
    conv.transact("NO", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))")
    assert b"[BADEVENT (" in conv.last
    conv.transact("BAD", "NOTIFY SET (PERSONAL (MessageNew))")  # RFC 5465: never one without the other
    conv.transact("BAD", "NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))")  # fetch-att: selected only
    conv.transact("BAD", "NOTIFY SET (SELECTED NONE) (SELECTED-DELAYED NONE)")


def test_selected_delayed_holds_expunges_until_a_command(server):
    watcher = session(server)
    for n in range(2):
        deliver(server, "alice@example.org", message(f"m{n}"))
    watcher.transact("OK", "SELECT INBOX")
    watcher.transact("OK", "NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge FlagChange))")
    other = session(server)
    other.transact("OK", "SELECT INBOX")
    other.transact("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.transact("OK", "EXPUNGE")
    deliver(server, "alice@example.org", message("after"))
    assert hear(watcher, lambda line: b"RECENT" in line)[-2:] == [b"* 3 EXISTS", b"* 3 RECENT"]  # new mail at once
    assert watcher.transact("OK", "NOOP") == [b"* 1 EXPUNGE"]  # ... the expunge only with a command


def test_selected_mailbox_deleted_under_notify(server):
    watcher = session(server)
    watcher.transact("OK", "CREATE Doomed")
    watcher.transact("OK", "SELECT Doomed")
    watcher.transact("OK", "NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (PERSONAL (MailboxName))")
    session(server).transact("OK", "DELETE Doomed")
    assert hear(watcher, lambda line: line.startswith(b"* BYE"))[-1].startswith(b"* BYE")


def test_without_a_selected_filter_the_selected_mailbox_waits_for_a_command(server):
    watcher = session(server)
    watcher.transact("OK", "SELECT INBOX")
    watcher.transact("OK", "NOTIFY SET (SELECTED NONE) (PERSONAL (MessageNew MessageExpunge MailboxName))")
    deliver(server, "alice@example.org", message("held back"))
    session(server).transact("OK", "CREATE Signal")  # heard at once; the new INBOX mail is not
    assert hear(watcher, lambda line: b"LIST" in line) == [b'* LIST () "/" "Signal"']
    assert watcher.transact("OK", "NOOP") == [b"* 1 EXISTS", b"* 1 RECENT"]


def test_subscribed_filter_follows_the_subscriptions(server):
    conv = session(server)
    conv.transact("OK", "CREATE News")
    conv.transact("OK", "CREATE Other")
    conv.transact("OK", "SUBSCRIBE News")
    conv.transact("OK", "NOTIFY SET (SUBSCRIBED (MessageNew MessageExpunge SubscriptionChange))")
    deliver(server, "alice@example.org", message("not followed"), mailbox="Other")
    deliver(server, "alice@example.org", message("followed"), mailbox="News")
    (line,) = hear(conv, lambda line: line.startswith(b"* STATUS"))
    assert line.startswith(b'* STATUS "News" (MESSAGES 1 ')
    other = session(server)
    other.transact("OK", "UNSUBSCRIBE News")
    assert hear(conv, lambda line: b"LIST" in line) == [b'* LIST () "/" "News"']
    other.transact("OK", "SUBSCRIBE Other")
    assert hear(conv, lambda line: b"LIST" in line) == [b'* LIST (\\Subscribed) "/" "Other"']
    deliver(server, "alice@example.org", message("now followed"), mailbox="Other")
    (line,) = hear(conv, lambda line: line.startswith(b"* STATUS"))
    assert line.startswith(b'* STATUS "Other" (MESSAGES 2 ')
