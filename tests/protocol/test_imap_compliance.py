"""Cases a compliance tester tries: sessions racing on one mailbox, RECENT, binary
APPEND and BINARY fetch, CONDSTORE's first command, LIST-EXTENDED, LSUB, mailbox
names that do not decode, MOVE into the mailbox itself, and overlong command lines.

imaptest groups: append-binary, fetch-binary-mime-qp, esearch-condstore, listext, subscribe,
select, move (and the stress run's state rules)."""

import logging
import re
import threading

import pytest

from tests.protocol.imapconv import deliver, message, session
from tests.protocol.mta_helpers import wait_until
from tests.protocol.imapstate import MailboxView


def told(conv, command: str, view: MailboxView) -> list[bytes]:
    lines = conv.transact("OK", command)
    for line in lines:
        view.feed(line)
    assert view.problems == []
    return lines


def selected(server, count: int, address="alice@example.org"):
    conv = session(server, address)
    for n in range(count):
        deliver(server, address, message(f"message {n}", body=f"Body number {n}.\r\n" * 20))
    view = MailboxView()
    told(conv, "SELECT INBOX", view)
    return conv, view


# 1. RFC 2180 §4.1.1: an expunge by another session does not take data from a FETCH

@pytest.mark.in_process(reason="another session acts from inside the server's store call, at one exact moment")
def test_fetch_still_answers_for_a_message_expunged_while_it_reads(server):
    conv, view = selected(server, 3)
    other = session(server)
    other.transact("OK", "SELECT INBOX")
    store = server.store
    real_get_raws = store.get_raws
    expunged = []

    def get_raws_after_expunge(blob_ids):
        # the other session's expunge commits between FETCH's rows and its bodies
        if not expunged:
            other.transact("OK", "STORE 1:3 +FLAGS.SILENT (\\Deleted)")
            expunged.extend(other.transact("OK", "EXPUNGE"))
        return real_get_raws(blob_ids)

    store.get_raws = get_raws_after_expunge
    try:
        lines = told(conv, "FETCH 1:3 (ENVELOPE BODYSTRUCTURE BODY.PEEK[])", view)
    finally:
        del store.get_raws
    assert len(expunged) == 3
    fetched = [line for line in lines if b" FETCH " in line]
    assert len(fetched) == 3 and all(b"Body number" in line and b"ENVELOPE (" in line for line in fetched)
    assert not any(b"EXPUNGE" in line for line in lines)  # RFC 3501 §7.4.1: not during FETCH
    assert conv.transact("OK", "NOOP") == [b"* 3 EXPUNGE", b"* 2 EXPUNGE", b"* 1 EXPUNGE"]
    assert server.tracebacks() == []


@pytest.mark.in_process(reason="another session acts from inside the server's store call, at one exact moment")
def test_a_message_expunged_before_a_later_batch_of_bodies_is_still_answered(server, monkeypatch):
    # past the first batch no snapshot is held while the client reads, but what another
    # session expunged is kept until this one is told (RFC 2180 §4.1)
    monkeypatch.setattr("appliance.imap.session.RAW_BATCH_BYTES", 1)  # a batch per message
    conv, view = selected(server, 3)
    other = session(server)
    other.transact("OK", "SELECT INBOX")
    store = server.store
    real_get_raws = store.get_raws
    batches = []

    def get_raws_then_expunge(blob_ids):
        batches.append(list(blob_ids))
        if len(batches) == 2:
            other.transact("OK", "STORE 2:3 +FLAGS.SILENT (\\Deleted)")
            other.transact("OK", "EXPUNGE")
        return real_get_raws(batches[-1])

    monkeypatch.setattr(store, "get_raws", get_raws_then_expunge)
    lines = told(conv, "FETCH 1:3 (UID BODY.PEEK[1])", view)
    assert len(batches) == 3
    assert [line[:17] for line in lines] == [b"* 1 FETCH (UID 1 ", b"* 2 FETCH (UID 2 ", b"* 3 FETCH (UID 3 "]
    assert all(b"Body number" in line for line in lines)
    assert server.tracebacks() == []


def kept(server) -> int:
    """Expunged messages the store still keeps for sessions not yet told of them."""
    with server.store.db.reader() as conn:
        return conn.execute("SELECT count(*) FROM expunged_kept").fetchone()[0]


def blobs(server) -> int:
    with server.store.db.reader() as conn:
        return conn.execute("SELECT count(*) FROM blobs").fetchone()[0]


def test_a_message_another_session_expunged_answers_until_this_one_is_told(server):
    # RFC 2180 §4.1, its first choice (Dovecot's too): the data, not NO, for a message this
    # session still believes in; kept until every session selected there was told
    conv, view = selected(server, 3)
    watcher = session(server)
    watcher.transact("OK", "EXAMINE INBOX")
    other = session(server)
    other.transact("OK", "SELECT INBOX")
    other.transact("OK", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert other.transact("OK", "EXPUNGE") == [b"* 2 EXPUNGE"]
    for n in range(2):  # again: a kept message answers as often as it is asked
        lines = told(conv, "FETCH 2 (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[])", view)
        assert len(lines) == 1 and lines[0].startswith(b"* 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent) RFC822.SIZE ")
        assert b'"message 1"' in lines[0] and b"Body number 1." in lines[0]
    assert told(conv, "FETCH 2 (BODY.PEEK[TEXT])", view)[0].startswith(b"* 2 FETCH (BODY[TEXT] {")
    assert kept(server) == 1 and blobs(server) == 3
    assert told(conv, "NOOP", view) == [b"* 2 EXPUNGE"]
    assert told(conv, "FETCH 1:* (UID)", view) == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 3)"]
    assert kept(server) == 1  # the watcher has not been told yet
    watcher.transact("OK", "LOGOUT")  # nor will it be: it leaves
    wait_until(lambda: kept(server) == 0 and blobs(server) == 2, what="the kept message let go")
    assert server.tracebacks() == []


def test_a_message_expunged_while_nobody_else_looks_is_not_kept(server):
    conv, view = selected(server, 2)
    told(conv, "STORE 1 +FLAGS.SILENT (\\Deleted)", view)
    assert told(conv, "EXPUNGE", view) == [b"* 1 EXPUNGE"]
    assert kept(server) == 0 and blobs(server) == 1


@pytest.mark.in_process(reason="another session acts from inside the server's store call, at one exact moment")
def test_search_of_headers_survives_an_expunge_between_its_reads(server):
    conv, view = selected(server, 2)
    other = session(server)
    other.transact("OK", "SELECT INBOX")
    store = server.store
    real_get_parsed = store.get_parsed

    def get_parsed_after_expunge(blob_ids):
        blob_ids = list(blob_ids)
        other.transact("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)")
        other.transact("OK", "EXPUNGE")
        return real_get_parsed(blob_ids)

    store.get_parsed = get_parsed_after_expunge
    try:
        assert told(conv, 'SEARCH SUBJECT "message"', view)[0] == b"* SEARCH 1 2"
    finally:
        del store.get_parsed
    assert server.tracebacks() == []


def test_expunges_racing_fetches_never_fail_them(server):
    conv, view = selected(server, 40)
    other = session(server)
    other.transact("OK", "SELECT INBOX")
    stop = threading.Event()

    def expunge_one_by_one():
        for n in range(40, 0, -1):
            if stop.is_set():
                return
            other.transact("OK", f"STORE {n} +FLAGS.SILENT (\\Deleted)")
            other.transact("OK", "EXPUNGE")

    racer = threading.Thread(target=expunge_one_by_one)
    racer.start()
    try:
        # once told of the last expunge the mailbox is empty, and 1:* names nothing (BAD)
        while racer.is_alive() and view.exists:
            lines = told(conv, "FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY.PEEK[])", view)
            assert all(b"BODY[] {" in line for line in lines if b"ENVELOPE" in line)
            told(conv, "NOOP", view)
    finally:
        stop.set()
        racer.join()
    # the last expunge may have been another worker's: the next command hears of it
    told(conv, "NOOP", view)
    assert view.exists == 0
    assert server.tracebacks() == []


def test_search_sees_each_concurrent_store_whole(server):
    conv, view = selected(server, 20)
    other = session(server)
    other.transact("OK", "SELECT INBOX")
    done = threading.Event()

    def toggle():
        for n in range(30):
            other.transact("OK", f"STORE 1:20 {'+-'[n % 2]}FLAGS.SILENT (\\Flagged)")
        done.set()

    racer = threading.Thread(target=toggle)
    racer.start()
    try:
        while not done.is_set():
            hits = [line for line in told(conv, "SEARCH FLAGGED", view) if line.startswith(b"* SEARCH")]
            assert hits in ([b"* SEARCH"], [b"* SEARCH " + b" ".join(b"%d" % n for n in range(1, 21))])
    finally:
        racer.join()


# 2. and 7. RECENT counts only messages the session was told of; EXAMINE shows it too

@pytest.mark.in_process(reason="another session acts from inside the server's store call, at one exact moment")
def test_recent_never_counts_a_message_appended_after_the_news(server):
    conv, view = selected(server, 1)
    store = server.store
    real_claim = store.claim_recent_upto
    mailbox = store.get_mailbox(store.get_user("alice@example.org").id, "INBOX")

    def claim_after_another_append(mailbox_id, highest_uid, before_write=None):
        # another session's APPEND commits after our news was read, before our claim
        store.append(mailbox.user_id, mailbox.id, message("late"))
        return real_claim(mailbox_id, highest_uid, before_write)

    store.claim_recent_upto = claim_after_another_append
    try:
        raw = message("mine")
        lines = told(conv, b"APPEND INBOX {%d+}\r\n%s\r\n" % (len(raw), raw), view)
    finally:
        del store.claim_recent_upto
    assert lines == [b"* 2 EXISTS", b"* 2 RECENT"]  # not 3 RECENT: the late one was not told yet
    lines = told(conv, "NOOP", view)
    assert lines == [b"* 3 EXISTS", b"* 3 RECENT"]  # now it is, \Recent with it


def test_appends_racing_appends_keep_recent_within_exists(server):
    conv, view = selected(server, 0)
    other = session(server)

    def append_many():
        for n in range(30):
            raw = message(f"other {n}")
            other.transact("OK", b"APPEND INBOX {%d+}\r\n%s\r\n" % (len(raw), raw))

    racer = threading.Thread(target=append_many)
    racer.start()
    for n in range(30):
        raw = message(f"mine {n}")
        told(conv, b"APPEND INBOX {%d+}\r\n%s\r\n" % (len(raw), raw), view)
    racer.join()
    told(conv, "NOOP", view)
    assert view.exists == 60 and view.recent <= 60


def test_examine_reports_the_recent_that_select_would(server):
    conv = session(server)
    for n in range(2):
        deliver(server, "alice@example.org", message(f"new {n}"))
    lines = conv.transact("OK", "EXAMINE INBOX")
    assert b"* 2 RECENT" in lines
    assert re.search(rb"FLAGS \(\\Recent\)", b"".join(conv.transact("OK", "FETCH 1 FLAGS")))
    assert b"* 2 RECENT" in conv.transact("OK", "SELECT INBOX")  # EXAMINE took nothing away
    assert b"* 0 RECENT" in conv.transact("OK", "EXAMINE INBOX")
    deliver(server, "alice@example.org", message("newer"))
    assert conv.transact("OK", "NOOP") == [b"* 3 EXISTS", b"* 1 RECENT"]


# 3. and 4. RFC 3516: binary APPEND and BINARY fetch

BINARY_PART = b"line one\nline two\r\x00\xff end"


def test_binary_append_keeps_the_bytes_of_a_binary_part(server):
    conv = session(server)
    raw = (b"From: a@example.net\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
           b"--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
           b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
           + BINARY_PART + b"\r\n--b1--\r\n")
    conv.transact("OK", b"APPEND INBOX ~{%d+}\r\n%s\r\n" % (len(raw), raw))
    conv.transact("OK", "SELECT INBOX")
    (line,) = conv.transact("OK", "FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2] RFC822.SIZE)")
    assert b"BINARY.SIZE[2] %d " % len(BINARY_PART) in line
    assert b"BINARY[2] ~{%d}\r\n%s " % (len(BINARY_PART), BINARY_PART) in line
    assert line.endswith(b"RFC822.SIZE %d)" % len(raw))
    # the same in a MULTIAPPEND (RFC 3502), beside a message sent as a plain literal
    conv.transact("OK", b"APPEND INBOX {%d+}\r\n%s ~{%d+}\r\n%s\r\n" % (len(raw), raw, len(raw), raw))
    lines = conv.transact("OK", "FETCH 2:3 (BINARY.SIZE[2])")
    assert lines[-2:] == [b"* 2 FETCH (BINARY.SIZE[2] %d)" % (len(BINARY_PART) + 2),  # bare LF and CR made CRLF
                          b"* 3 FETCH (BINARY.SIZE[2] %d)" % len(BINARY_PART)]


def test_binary_fetch_decodes_quoted_printable_as_rfc_2045_says(server):
    body = b"trailing spaces go   \r\nsoft = \r\nbreak=3D\tand tab\t\r\n"
    decoded = b"trailing spaces go\r\nsoft break=\tand tab\r\n"
    deliver(server, "alice@example.org",
            message("qp", body=body.decode(), extra="Content-Transfer-Encoding: quoted-printable\r\n"))
    conv = session(server)
    conv.transact("OK", "SELECT INBOX")
    (line,) = conv.transact("OK", "FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])")
    assert line == b"* 1 FETCH (BINARY.SIZE[1] %d BINARY[1] {%d}\r\n%s)" % (len(decoded), len(decoded), decoded)


# 5. RFC 7162 §3.1: the first CONDSTORE command, and ESEARCH MIN/MAX with MODSEQ

def test_first_condstore_command_reports_highestmodseq(server):
    conv, view = selected(server, 3)
    lines = told(conv, "FETCH 1 (MODSEQ)", view)
    assert re.fullmatch(rb"\* OK \[HIGHESTMODSEQ \d+\] .*", lines[0]) and b"MODSEQ (" in lines[1]
    assert not any(b"HIGHESTMODSEQ" in line for line in told(conv, "FETCH 1 (MODSEQ)", view))
    other, view = selected(server, 0)
    lines = told(other, "STATUS Drafts (HIGHESTMODSEQ)", view)  # STATUS enables CONDSTORE too
    assert lines[0].startswith(b"* OK [HIGHESTMODSEQ ") and lines[1].startswith(b'* STATUS "Drafts"')
    assert b"MODSEQ (" in told(other, "STORE 1 +FLAGS (\\Seen)", view)[0]


def test_esearch_min_and_max_report_the_modseq_of_the_message_found(server):
    conv, view = selected(server, 3)
    told(conv, "STORE 3 +FLAGS (\\Flagged)", view)  # message 3 now has the highest modseq
    modseqs = {}
    for line in told(conv, "FETCH 1:3 (MODSEQ)", view):
        if match := re.match(rb"\* (\d) FETCH \(MODSEQ \((\d+)\)\)", line):
            modseqs[int(match.group(1))] = int(match.group(2))
    assert modseqs[3] > modseqs[1]
    (line,) = told(conv, "SEARCH RETURN (MIN) MODSEQ 1", view)
    assert line == b'* ESEARCH (TAG "t%d") MIN 1 MODSEQ %d' % (conv.count, modseqs[1])
    (line,) = told(conv, "SEARCH RETURN (MAX) MODSEQ 1", view)
    assert line.endswith(b"MAX 3 MODSEQ %d" % modseqs[3])
    (line,) = told(conv, "SEARCH RETURN (MIN) 1:2 MODSEQ 1", view)
    assert line.endswith(b"MIN 1 MODSEQ %d" % modseqs[1])
    (line,) = told(conv, "SEARCH RETURN (COUNT) MODSEQ 1", view)
    assert line.endswith(b"COUNT 3 MODSEQ %d" % max(modseqs.values()))


# 6. and 8. RFC 5258 LIST-EXTENDED, RFC 3501 §6.3.9 LSUB

def test_recursivematch_needs_a_real_selection_option(server):
    conv = session(server)
    conv.transact("BAD", 'LIST (RECURSIVEMATCH) "" "*"')
    conv.transact("BAD", 'LIST (RECURSIVEMATCH REMOTE) "" "*"')
    conv.transact("OK", 'LIST (REMOTE) "" "*"')


def test_childinfo_only_for_children_the_pattern_does_not_list(server):
    conv = session(server)
    conv.transact("OK", "CREATE Foo/Bar")
    conv.transact("OK", "SUBSCRIBE Foo/Bar")
    lines = conv.transact("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "F*"')
    assert lines == [b'* LIST (\\HasNoChildren \\Subscribed) "/" "Foo/Bar"']
    lines = conv.transact("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "F%"')
    assert lines == [b'* LIST (\\HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))']
    conv.transact("OK", "SUBSCRIBE Foo")
    lines = conv.transact("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "F%"')
    assert lines == [b'* LIST (\\HasChildren \\Subscribed) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))']


def test_lsub_percent_lists_an_unsubscribed_parent_as_noselect(server):
    conv = session(server)
    conv.transact("OK", "CREATE Foo/Bar/Baz")
    conv.transact("OK", "SUBSCRIBE Foo/Bar/Baz")
    assert conv.transact("OK", 'LSUB "" "F%"') == [b'* LSUB (\\Noselect) "/" "Foo"']
    assert conv.transact("OK", 'LSUB "" "Foo/%"') == [b'* LSUB (\\Noselect) "/" "Foo/Bar"']
    assert conv.transact("OK", 'LSUB "" "F*"') == [b'* LSUB () "/" "Foo/Bar/Baz"']
    conv.transact("OK", "SUBSCRIBE Foo")
    assert conv.transact("OK", 'LSUB "" "F%"') == [b'* LSUB () "/" "Foo"']


# 9. names that are not modified UTF-7; MOVE into the selected mailbox

def test_a_name_that_is_not_modified_utf7_is_refused_with_no(server):
    conv = session(server)
    for command in ('SELECT "&Jjo"', 'CREATE "a&-&b"', 'STATUS "&AGE-" (MESSAGES)', 'LIST "" "&Jjo"',
                    'SUBSCRIBE "&"'):
        conv.transact("NO", command)
    conv.transact("BAD", "SELECT")  # a missing name is still a syntax error


def test_move_into_the_selected_mailbox_works_like_copy(server):
    conv, view = selected(server, 2)
    lines = told(conv, "MOVE 1 INBOX", view)
    assert re.fullmatch(rb"\* OK \[COPYUID \d+ 1 3\] .*", lines[0])
    assert lines[1:] == [b"* 1 EXPUNGE", b"* 2 EXISTS", b"* 2 RECENT"]  # the moved copy is new here
    lines = told(conv, "UID FETCH 1:* (UID)", view)
    assert lines == [b"* 1 FETCH (UID 2)", b"* 2 FETCH (UID 3)"]


# 10. overlong lines and deep SEARCH programs after login

def test_long_lines_after_login(server):
    conv, view = selected(server, 3)
    uid_set = ",".join(str(n) for n in range(1, 14000, 2))  # about 70 KB, as a big mailbox's sync sends
    lines = told(conv, f"UID FETCH {uid_set} (FLAGS)", view)
    assert [line[:20] for line in lines] == [b"* 1 FETCH (UID 1 FLA", b"* 3 FETCH (UID 3 FLA"]
    conv.transact("BAD", "SEARCH " + "OR ALL " * 10_000 + "ALL")  # answered with its tag, not left hanging
    conv.send(b"t99 NOOP " + b"x" * 300_000)
    assert conv.line() == b"t99 BAD Command too long"
    told(conv, "NOOP", view)


@pytest.mark.in_process(reason="it logs a traceback from the test's process, as the server's threads would")
def test_tracebacks_of_the_server_loggers_are_heard(server):
    # a guard for the tests above
    logging.getLogger("kotakpos.imap").exception("probe", exc_info=ValueError("x"))
    assert server.tracebacks() == ["probe"]
