"""The IMAP tokenizer and command parser: bytes in, command objects out."""

import datetime as dt

import pytest
from hypothesis import given, strategies as st

from appliance.imap.commands import any as any_cmds, auth, nonauth, selected
from appliance.imap.parse import Cursor, InvalidCommand, SequenceSet, parse_command


def parse(line: bytes):
    return parse_command(line + b"\r\n")


def test_login_with_atoms_quoted_and_literals():
    assert parse(b"a1 LOGIN bob secret") == nonauth.Login(b"a1", b"bob", b"secret")
    assert parse(b'a2 login "bob@x.org" "p a\\"ss\\\\"') == nonauth.Login(b"a2", b"bob@x.org", b'p a"ss\\')
    assert parse(b"a3 LOGIN {3}\r\nbob {4+}\r\np ss") == nonauth.Login(b"a3", b"bob", b"p ss")


def test_verbs_are_case_insensitive_and_uid_forms_are_distinct():
    assert parse(b"x noop") == any_cmds.Noop(b"x")
    assert isinstance(parse(b"x uid fetch 1 flags"), selected.UidFetch)
    assert isinstance(parse(b"x fetch 1 flags"), selected.Fetch)


@pytest.mark.parametrize("line, reason", [
    (b"a1 FETCH 0 FLAGS", "zero"),
    (b"a1 FETCH 1:99999999999 FLAGS", "out of range"),
    (b"a1 FETCH 4294967296 FLAGS", "out of range"),
    (b"a1 FETCH 1,,2 FLAGS", ""),
    (b'a1 LOGIN "bob secret', "quoted string"),
    (b"a1 LOGIN bob", "space"),
    (b"a1 LOGIN bob pw extra", "after command"),
    (b"a1 SELECT {5}\r\nab", "shorter"),
    (b"a1 STORE 1 FLAGS (\\Recent)", "Recent"),
    (b"a1 FETCH 1 (FLAGS", ""),
])
def test_syntax_errors_keep_the_tag(line, reason):
    result = parse(line)
    assert isinstance(result, InvalidCommand)
    assert result.tag == b"a1"
    assert reason in result.reason


def test_unknown_verb_and_missing_tag():
    assert parse(b"a1 FROB x") == InvalidCommand(b"a1", "FROB", "unknown command", unknown=True)
    assert parse(b"") .tag is None
    assert parse(b"+plus NOOP").tag is None


def test_deep_nesting_is_refused():
    result = parse(b"a1 SEARCH " + b"(" * 40 + b"ALL" + b")" * 40)
    assert isinstance(result, InvalidCommand) and "nested" in result.reason
    result = parse(b"a1 SEARCH " + b"NOT " * 40 + b"ALL")
    assert isinstance(result, InvalidCommand) and "nested" in result.reason


def test_sequence_sets_with_star_and_reversed_ranges():
    seq = Cursor(b"7:3,*,9:*").sequence_set()
    assert seq == SequenceSet(((7, 3), (None, None), (9, None)))
    assert seq.resolve(20) == [(3, 7), (20, 20), (9, 20)]
    # RFC 3501 §6.4.8: "UID n:*" always includes the largest UID, even when n is larger
    assert SequenceSet(((50, None),)).resolve(12) == [(12, 50)]
    assert str(seq) == "7:3,*,9:*"


def test_mailbox_names_are_decoded_and_inbox_normalised():
    assert parse(b"a SELECT inbox") == auth.Select(b"a", "INBOX")
    assert parse(b"a CREATE Entw&APw-rfe") == auth.Create(b"a", "Entwürfe")
    assert parse(b"a CREATE inbox/Sub").mailbox == "INBOX/Sub"
    assert isinstance(parse(b"a CREATE caf\xc3\xa9"), InvalidCommand)


def test_select_with_condstore_and_qresync():
    cmd = parse(b"a SELECT INBOX (CONDSTORE)")
    assert cmd.condstore and cmd.qresync is None
    cmd = parse(b"a EXAMINE INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:3 41:43)))")
    assert isinstance(cmd, auth.Examine) and cmd.READ_ONLY
    q = cmd.qresync
    assert (q.uidvalidity, q.modseq) == (67890007, 90060115194045000)
    assert q.known_uids == SequenceSet(((41, 211), (214, 541)))
    assert q.known_seqs == SequenceSet(((1, 3),)) and q.known_seq_uids == SequenceSet(((41, 43),))
    assert isinstance(parse(b"a SELECT INBOX (BOGUS)"), InvalidCommand)


def test_append_with_flags_date_and_literal():
    cmd = parse(b'a APPEND Sent (\\Seen $Label1) "05-Mar-2024 08:09:10 +0100" {11}\r\nHello world')
    (msg,) = cmd.messages
    assert cmd.mailbox == "Sent" and msg.flags == ("\\Seen", "$Label1")
    assert msg.date == dt.datetime(2024, 3, 5, 8, 9, 10, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert msg.message == b"Hello world" and msg.parts is None
    assert parse(b"a APPEND INBOX {2+}\r\nhi").messages[0].message == b"hi"
    assert parse(b"a APPEND INBOX ~{3}\r\na\x00b").messages[0].message == b"a\x00b"  # RFC 3516 literal8
    assert isinstance(parse(b"a LOGIN ~{3}\r\na\x00b x"), InvalidCommand)
    assert isinstance(parse(b'a APPEND INBOX "32-Jan-2024 00:00:00 +0000" {1}\r\nx'), InvalidCommand)


def test_multiappend_and_catenate():
    # RFC 3502: several messages, each with its own options; RFC 4469: CATENATE parts
    cmd = parse(b'a APPEND INBOX {1+}\r\nx (\\Seen) {1+}\r\ny CATENATE (URL "/INBOX/;UID=3" TEXT {2+}\r\nhi)')
    first, second, third = cmd.messages
    assert (first.message, second.message, second.flags) == (b"x", b"y", ("\\Seen",))
    assert third.parts[0].url == "/INBOX/;UID=3" and third.parts[1].text == b"hi"
    for bad in (b"a APPEND INBOX", b"a APPEND INBOX {1+}\r\nx y", b"a APPEND INBOX CATENATE ()",
                b'a APPEND INBOX CATENATE (FILE "x")', b"a APPEND INBOX {1+}\r\nx (\\Seen)"):
        assert isinstance(parse(bad), InvalidCommand), bad


def test_store_variants():
    cmd = parse(b"a UID STORE 1:* (UNCHANGEDSINCE 12345) -FLAGS.SILENT (\\Deleted \\SEEN foo)")
    assert isinstance(cmd, selected.UidStore)
    assert (cmd.mode, cmd.silent, cmd.unchangedsince) == ("-", True, 12345)
    assert cmd.flags == ("\\Deleted", "\\Seen", "foo")
    assert parse(b"a STORE 2 FLAGS \\Flagged $Work").flags == ("\\Flagged", "$Work")
    assert isinstance(parse(b"a STORE 2 LABELS (x)"), InvalidCommand)


def test_list_forms():
    assert parse(b'a LIST "" *') == auth.List(b"a", "", ("*",))
    cmd = parse(b'a LIST (SPECIAL-USE RECURSIVEMATCH) "" ("%" "Arch*") RETURN (SUBSCRIBED STATUS (MESSAGES))')
    assert cmd.selection == {"SPECIAL-USE", "RECURSIVEMATCH"} and cmd.patterns == ("%", "Arch*")
    assert cmd.returns == {"SUBSCRIBED", "STATUS"} and cmd.status_items == ("MESSAGES",)
    assert cmd.extended
    assert isinstance(parse(b'a LIST (RECURSIVEMATCH) "" *'), InvalidCommand)
    assert isinstance(parse(b'a LIST (REMOTE RECURSIVEMATCH) "" *'), InvalidCommand)  # RFC 5258 §3.1
    assert parse(b'a LIST (REMOTE SUBSCRIBED RECURSIVEMATCH) "" *').selection == {
        "REMOTE", "SUBSCRIBED", "RECURSIVEMATCH"}
    assert parse(b'a LSUB "" INBOX/%') == auth.Lsub(b"a", "", "INBOX/%")


def test_status_enable_id_authenticate_copy_move():
    assert parse(b"a STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ)").items == ("MESSAGES", "UIDNEXT", "HIGHESTMODSEQ")
    assert isinstance(parse(b"a STATUS INBOX (BOGUS)"), InvalidCommand)
    assert parse(b"a ENABLE QRESYNC CONDSTORE").capabilities == ("QRESYNC", "CONDSTORE")
    assert isinstance(parse(b"a ENABLE"), InvalidCommand)
    assert parse(b'a ID ("name" "mbsync" "version" NIL)').params == (("name", "mbsync"), ("version", None))
    assert parse(b"a ID NIL").params == ()
    assert parse(b"a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=").initial == b"AGJvYgBzZWNyZXQ="
    assert parse(b"a AUTHENTICATE plain") == nonauth.Authenticate(b"a", "PLAIN", None)
    assert parse(b"a UID MOVE 1:3 Trash") == selected.UidMove(b"a", SequenceSet(((1, 3),)), "Trash")
    assert parse(b"a UID EXPUNGE 4,5") == selected.UidExpunge(b"a", SequenceSet(((4, 4), (5, 5))))


ALPHABET = list(b'ab09 ()[]<>{}+*%:,."\\~\r\n') + [0, 0xFF]


@given(st.lists(st.sampled_from(["FETCH 1 ", "SEARCH ", "STORE 1 ", "LIST ", "APPEND INBOX ", "SELECT ",
                                 "UID FETCH 1:* ", "BODY[", "HEADER.FIELDS (", "OR ", "NOT ", "{3}\r\n",
                                 "{2+}\r\n", "(", ")", "\"", "1:*", "0", "CHANGEDSINCE ", "QRESYNC ("]), max_size=8),
       st.binary(max_size=30).map(lambda b: bytes(c for c in b if c in ALPHABET)))
def test_parser_never_raises(pieces, tail):
    """Whatever arrives, the parser returns a command or InvalidCommand; it never raises."""
    data = b"t " + "".join(pieces).encode() + tail + b"\r\n"
    result = parse_command(data)
    assert result.tag == b"t" or result.tag is None


def test_saved_result_and_partial_ranges():
    # RFC 5182 "$" stands alone as a sequence set; RFC 9394 partial ranges count from either end
    cmd = parse(b"a UID FETCH $ (FLAGS) (PARTIAL -1:-30)")
    assert cmd.messages.saved and str(cmd.messages) == "$" and cmd.partial == (-1, -30)
    assert parse(b"a SEARCH RETURN (SAVE PARTIAL 1:10) $ UID $").program.partial == (1, 10)
    for bad in (b"a FETCH $,1 FLAGS", b"a FETCH 1:$ FLAGS", b"a SEARCH RETURN (PARTIAL 1:-2) ALL",
                b"a SEARCH RETURN (PARTIAL 0:2) ALL", b"a SEARCH RETURN (PARTIAL) ALL"):
        assert isinstance(parse(bad), InvalidCommand), bad


def test_notify():
    # RFC 5465 §8: NOTIFY SET [STATUS] event-groups / NOTIFY NONE
    cmd = parse(b'a NOTIFY SET STATUS (SELECTED (MessageNew (UID BODY.PEEK[HEADER]) MessageExpunge)) '
                b'(SUBTREE (Lists "Work/A") (MessageNew MessageExpunge FlagChange)) (INBOXES NONE)')
    selected, subtree, inboxes = cmd.groups
    assert cmd.status and selected.filter == "SELECTED" and [a.name for a in selected.fetch_atts] == ["UID", "BODY"]
    assert subtree.mailboxes == ("Lists", "Work/A") and "FLAGCHANGE" in subtree.events
    assert inboxes.events == frozenset()
    assert parse(b"a NOTIFY NONE").groups is None
    assert parse(b"a NOTIFY SET (MAILBOXES INBOX (MailboxName))").groups[0].mailboxes == ("INBOX",)
    for bad in (b"a NOTIFY", b"a NOTIFY SET", b"a NOTIFY SET (PERSONAL (Bogus))", b"a NOTIFY SET (NOWHERE NONE)",
                b"a NOTIFY SET (PERSONAL (MessageExpunge))", b"a NOTIFY SET (PERSONAL (FlagChange))",
                b"a NOTIFY SET (INBOXES (MessageNew (UID) MessageExpunge))", b"a NOTIFY SET (SUBTREE (MailboxName))",
                b"a NOTIFY SET (SELECTED NONE) (SELECTED NONE)"):
        assert isinstance(parse(bad), InvalidCommand), bad


def test_a_name_that_is_not_modified_utf7_is_refused_not_malformed():
    for line in (b'a SELECT "&Jjo"', b'a LIST "" "&AGE-"', b"a CREATE a&b"):
        cmd = parse(line)
        assert isinstance(cmd, InvalidCommand) and cmd.refused and cmd.tag == b"a"
    cmd = parse(b"a SELECT")
    assert isinstance(cmd, InvalidCommand) and not cmd.refused


def test_append_of_a_binary_literal_is_marked_binary():
    assert parse(b"a APPEND INBOX ~{3+}\r\nx\ny").messages[0].binary
    assert not parse(b"a APPEND INBOX {3+}\r\nx\ny").messages[0].binary
