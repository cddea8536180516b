"""Rendering IMAP responses."""

import datetime as dt

from appliance.imap import replies


def test_status_lines():
    assert replies.ok(b"a1", "SELECT completed", "READ-WRITE") == b"a1 OK [READ-WRITE] SELECT completed\r\n"
    assert replies.no(None, "x") == b"* NO x\r\n"
    assert replies.bad(b"t", "line\r\nbreak") == b"t BAD line  break\r\n"


def test_strings_are_quoted_or_literal_as_needed():
    assert replies.render(b'say "hi" \\o/') == b'"say \\"hi\\" \\\\o/"'
    assert replies.render(b"two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert replies.render("Grüße") == b"{7}\r\nGr\xc3\xbc\xc3\x9fe"
    assert replies.render(b"x" * 2000).startswith(b"{2000}\r\n")


def test_nested_values():
    line = replies.data(5, replies.Atom(b"FETCH"), [replies.Atom(b"UID"), 9, replies.Atom(b"X"), None,
                                                   replies.flags(["\\Seen", "$Work"])])
    assert line == b"* 5 FETCH (UID 9 X NIL (\\Seen $Work))\r\n"


def test_internaldate_and_sequence_sets():
    when = dt.datetime(2024, 3, 5, 8, 9, 10, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    assert replies.internaldate(when) == b'"05-Mar-2024 08:09:10 -0700"'
    assert replies.sequence_set([9, 1, 2, 3, 7, 10]) == b"1:3,7,9:10"
    assert replies.sequence_set([]) == b""
