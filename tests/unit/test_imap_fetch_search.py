"""FETCH attributes and SEARCH criteria."""

import datetime as dt

import pytest

from appliance.imap.fetch import FetchAtt, Section
from appliance.imap.parse import InvalidCommand, SequenceSet, parse_command
from appliance.imap.search import And, Key, Not, Or, uses_modseq


def atts(text: bytes):
    cmd = parse_command(b"a FETCH 1 " + text + b"\r\n")
    assert not isinstance(cmd, InvalidCommand), cmd
    return cmd.atts


def criteria(text: bytes):
    cmd = parse_command(b"a SEARCH " + text + b"\r\n")
    assert not isinstance(cmd, InvalidCommand), cmd
    return cmd.program


def test_macros_expand():
    assert [a.name for a in atts(b"ALL")] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    assert [a.name for a in atts(b"fast")] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    assert [a.name for a in atts(b"FULL")][-1] == "BODY"


@pytest.mark.parametrize("text, att, key", [
    (b"BODY[]", FetchAtt("BODY", Section()), b"BODY[]"),
    (b"BODY.PEEK[HEADER]<0.512>", FetchAtt("BODY", Section((), "HEADER"), (0, 512), True), b"BODY[HEADER]<0>"),
    (b"body[1.2.3.mime]", FetchAtt("BODY", Section((1, 2, 3), "MIME")), b"BODY[1.2.3.MIME]"),
    (b"BODY[2.HEADER.FIELDS.NOT (Received x-spam)]",
     FetchAtt("BODY", Section((2,), "HEADER.FIELDS.NOT", ("RECEIVED", "X-SPAM"))),
     b"BODY[2.HEADER.FIELDS.NOT (RECEIVED X-SPAM)]"),
    (b"BODY[TEXT]<100.5>", FetchAtt("BODY", Section((), "TEXT"), (100, 5)), b"BODY[TEXT]<100>"),
    (b"BINARY.PEEK[1]", FetchAtt("BINARY", Section((1,)), None, True), b"BINARY[1]"),
    (b"BINARY.SIZE[]", FetchAtt("BINARY.SIZE", Section()), b"BINARY.SIZE[]"),
    # beyond RFC 3516's grammar, as clients send it: a section without an encoding of its own
    (b"BINARY.PEEK[2.HEADER]", FetchAtt("BINARY", Section((2,), "HEADER"), None, True), b"BINARY[2.HEADER]"),
    (b"BINARY.SIZE[1.MIME]", FetchAtt("BINARY.SIZE", Section((1,), "MIME")), b"BINARY.SIZE[1.MIME]"),
    (b"MODSEQ", FetchAtt("MODSEQ"), b"MODSEQ"),
])
def test_section_attributes(text, att, key):
    (parsed,) = atts(text)
    assert parsed == att
    assert parsed.response_key() == key


def test_seen_side_effect():
    assert FetchAtt("BODY", Section()).sets_seen
    assert not FetchAtt("BODY", Section(), peek=True).sets_seen
    assert FetchAtt("RFC822").sets_seen and not FetchAtt("RFC822.HEADER").sets_seen
    assert not FetchAtt("BODY").sets_seen  # BODY without a section is the structure


@pytest.mark.parametrize("text", [
    b"BODY[MIME]", b"BODY[1.]", b"BODY[0]", b"BINARY[1.BOGUS]", b"BINARY[1]<2>", b"BODY[HEADER.FIELDS ()]",
    b"BODY[]<5>", b"BODY[]<1.0>", b"FLAGS.BOGUS", b"ENVELOPE[]", b"()",
])
def test_bad_attributes(text):
    assert isinstance(parse_command(b"a FETCH 1 " + text + b"\r\n"), InvalidCommand)


def test_fetch_modifiers():
    cmd = parse_command(b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n")
    assert (cmd.changedsince, cmd.vanished) == (12345, True)
    # RFC 7162 §3.2.6: VANISHED needs UID FETCH and CHANGEDSINCE
    assert isinstance(parse_command(b"a FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)\r\n"), InvalidCommand)
    assert isinstance(parse_command(b"a UID FETCH 1:* FLAGS (VANISHED)\r\n"), InvalidCommand)


def test_every_rfc3501_key_parses():
    text = (b"ALL ANSWERED BCC x BEFORE 1-Feb-2024 BODY y CC z DELETED DRAFT FLAGGED FROM w "
            b'HEADER X-Mailer "mutt 2" KEYWORD $Work LARGER 10 NEW NOT SEEN OLD ON "2-Mar-2023" '
            b"OR RECENT UNSEEN SEEN SENTBEFORE 1-Jan-2000 SENTON 1-Jan-2000 SENTSINCE 1-Jan-2000 "
            b"SINCE 1-Jan-2000 SMALLER 100 SUBJECT hi TEXT there TO you UID 1:5 UNANSWERED "
            b"UNDELETED UNDRAFT UNFLAGGED UNKEYWORD $Junk UNSEEN 1,3:*")
    keys = criteria(text).criteria.keys
    names = [k.name for k in keys if isinstance(k, Key)]
    assert "HEADER" in names and names[-1] == "SEQ"
    assert Key("HEADER", ("X-Mailer", b"mutt 2")) in keys
    assert Key("BEFORE", dt.date(2024, 2, 1)) in keys
    assert Or(Key("RECENT"), Key("UNSEEN")) in keys
    assert Not(Key("SEEN")) in keys


def test_nested_or_not_charset_and_return():
    program = criteria(b'RETURN (MIN COUNT) CHARSET utf-8 OR (FROM "a b" NOT SEEN) (OR TO {2}\r\nzz UID 7)')
    assert program.charset == "UTF-8" and program.returns == {"MIN", "COUNT"}
    (node,) = program.criteria.keys
    assert node == Or(And((Key("FROM", b"a b"), Not(Key("SEEN")))),
                      And((Or(Key("TO", b"zz"), Key("UID", SequenceSet(((7, 7),)))),)))
    assert criteria(b"RETURN () ALL").returns == {"ALL"}


def test_modseq_search():
    program = criteria(b'MODSEQ "/flags/\\\\draft" all 620162338')
    assert program.criteria.keys == (Key("MODSEQ", 620162338),)
    assert uses_modseq(program.criteria) and not uses_modseq(criteria(b"ALL").criteria)


@pytest.mark.parametrize("text", [b"", b"BOGUS", b"OR SEEN", b"LARGER x", b"SINCE 2024-01-01",
                                  b"RETURN (FIRST) ALL", b"0", b"(ALL"])
def test_bad_search(text):
    assert isinstance(parse_command(b"a SEARCH " + text + b"\r\n"), InvalidCommand)
