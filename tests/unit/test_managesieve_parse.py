"""ManageSieve parsing and reply formatting (RFC 5804 §4), without sockets."""

from __future__ import annotations

import pytest

from appliance.managesieve import replies as R
from appliance.managesieve.parse import Command, InvalidCommand, parse_command, parse_string_line


@pytest.mark.parametrize("data, verb, args", [
    (b"CAPABILITY\r\n", "CAPABILITY", ()),
    (b"logout\n", "LOGOUT", ()),
    (b'AUTHENTICATE "PLAIN" "AGEAYg=="\r\n', "AUTHENTICATE", (b"PLAIN", b"AGEAYg==")),
    (b'AUTHENTICATE "PLAIN" {8+}\r\nAGEAYg==\r\n', "AUTHENTICATE", (b"PLAIN", b"AGEAYg==")),
    (b'AUTHENTICATE "PLAIN"\r\n', "AUTHENTICATE", (b"PLAIN",)),
    (b'HAVESPACE "a b" 4294967295\r\n', "HAVESPACE", (b"a b", 4294967295)),
    (b'PUTSCRIPT "x" {7+}\r\nkeep;\r\n\r\n', "PUTSCRIPT", (b"x", b"keep;\r\n")),
    (b'PUTSCRIPT {3}\r\n"x" {0+}\r\n\r\n', "PUTSCRIPT", (b'"x"', b"")),
    (b'SETACTIVE ""\r\n', "SETACTIVE", (b"",)),
    (b'GETSCRIPT "say \\"hi\\" \\\\o/"\r\n', "GETSCRIPT", (b'say "hi" \\o/',)),
    (b'RENAMESCRIPT "a" "b"\r\n', "RENAMESCRIPT", (b"a", b"b")),
    (b'NOOP\r\n', "NOOP", ()),
    (b'NOOP "tag"\r\n', "NOOP", (b"tag",)),
    ('GETSCRIPT "Libur ☪"\r\n'.encode(), "GETSCRIPT", ("Libur ☪".encode(),)),
])
def test_well_formed_commands(data, verb, args):
    assert parse_command(data) == Command(verb, args)


@pytest.mark.parametrize("data, reply", [
    (b"\r\n", R.NO_UNKNOWN_COMMAND),
    (b"FROB\r\n", R.NO_UNKNOWN_COMMAND),
    (b"1LOGOUT\r\n", R.NO_UNKNOWN_COMMAND),
    (b"LOGOUT now\r\n", R.NO_BAD_ARGUMENTS),
    (b"LOGOUT  \r\n", R.NO_BAD_ARGUMENTS),
    (b'GETSCRIPT\r\n', R.NO_BAD_ARGUMENTS),
    (b'GETSCRIPT "a" "b"\r\n', R.NO_BAD_ARGUMENTS),
    (b'GETSCRIPT 12\r\n', R.NO_BAD_ARGUMENTS),
    (b'GETSCRIPT atom\r\n', R.NO_BAD_ARGUMENTS),
    (b'GETSCRIPT "open\r\n', R.NO_BAD_ARGUMENTS),
    (b'GETSCRIPT "bad \\n escape"\r\n', R.NO_BAD_ARGUMENTS),
    (b'GETSCRIPT {10+}\r\nshort\r\n', R.NO_BAD_ARGUMENTS),
    (b'HAVESPACE "a" 4294967296\r\n', R.NO_BAD_ARGUMENTS),
    (b'HAVESPACE "a" -1\r\n', R.NO_BAD_ARGUMENTS),
    (b'HAVESPACE "a" "1"\r\n', R.NO_BAD_ARGUMENTS),
    (b'PUTSCRIPT "a" {3+}\r\nabc', R.NO_BAD_ARGUMENTS),  # no CRLF after the literal
])
def test_malformed_commands(data, reply):
    result = parse_command(data)
    assert isinstance(result, InvalidCommand) and result.reply == reply


def test_sasl_responses():
    assert parse_string_line(b'"AGEAYg=="\r\n') == b"AGEAYg=="
    assert parse_string_line(b"{8+}\r\nAGEAYg==\r\n") == b"AGEAYg=="
    assert parse_string_line(b'"*"\r\n') == b"*"
    assert parse_string_line(b"AGEAYg==\r\n") is None
    assert parse_string_line(b'"a" "b"\r\n') is None


def test_strings_are_quoted_when_they_can_be_and_literals_otherwise():
    assert R.string('say "hi" \\o/') == b'"say \\"hi\\" \\\\o/"'
    assert R.string("Libur ☪") == '"Libur ☪"'.encode()
    assert R.string("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert R.string("x" * 1025).startswith(b"{1025}\r\n")


def test_responses_with_codes():
    assert R.no("Too many scripts", "QUOTA/MAXSCRIPTS") == b'NO (QUOTA/MAXSCRIPTS) "Too many scripts"'
    assert R.noop(b"x\r\ny") == b'OK (TAG {4}\r\nx\r\ny) "Done"'
    assert R.script_listing([("a", False), ('b"', True)]) == [b'"a"', b'"b\\"" ACTIVE', R.OK_LISTED]
    assert R.script_text("keep;\r\n") == [b"{7}\r\nkeep;\r\n", R.OK_GOT]


def test_capabilities_before_and_after_login():
    before = R.capabilities(implementation="K", sasl=[], sieve={"fileinto", "copy"}, starttls=True,
                            max_redirects=5, owner=None)
    assert before == [b'"IMPLEMENTATION" "K"', b'"SASL" ""', b'"SIEVE" "copy fileinto"', b'"STARTTLS"',
                      b'"MAXREDIRECTS" "5"', b'"VERSION" "1.0"', b'"UNAUTHENTICATE"', R.OK]
    after = R.capabilities(implementation="K", sasl=[], sieve=set(), starttls=False, max_redirects=5, owner="a@b")
    assert b'"OWNER" "a@b"' in after and b'"STARTTLS"' not in after
