"""POP3 parser: bytes in, command objects out (RFC 1939, 2449, 2595, 5034)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.pop3 import replies
from appliance.pop3.parse import VERBS, Command, InvalidCommand, parse_command


@pytest.mark.parametrize(
    "line, expected",
    [
        (b"STAT\r\n", Command("STAT")),
        (b"stat\r\n", Command("STAT")),
        (b"Quit\n", Command("QUIT")),
        (b"CAPA", Command("CAPA")),
        (b"STLS\r\n", Command("STLS")),
        (b"NOOP\r\n", Command("NOOP")),
        (b"RSET\r\n", Command("RSET")),
        (b"LIST\r\n", Command("LIST")),
        (b"LIST 3\r\n", Command("LIST", number=3)),
        (b"UIDL\r\n", Command("UIDL")),
        (b"uidl 12\r\n", Command("UIDL", number=12)),
        (b"RETR 1\r\n", Command("RETR", number=1)),
        (b"DELE 7\r\n", Command("DELE", number=7)),
        (b"TOP 2 0\r\n", Command("TOP", number=2, lines=0)),
        (b"TOP 2 10\r\n", Command("TOP", number=2, lines=10)),
        (b"USER alice@example.org\r\n", Command("USER", text="alice@example.org")),
        (b"AUTH\r\n", Command("AUTH")),
        (b"AUTH plain\r\n", Command("AUTH", text="PLAIN")),
        (b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
         Command("AUTH", text="PLAIN", initial="AGFsaWNlAHNlY3JldA==")),
        (b"AUTH PLAIN =\r\n", Command("AUTH", text="PLAIN", initial="=")),
    ],
)
def test_well_formed_commands(line, expected):
    assert parse_command(line) == expected


def test_pass_keeps_spaces_inside_the_password():
    assert parse_command(b"PASS correct horse  battery \r\n") == Command(
        "PASS", text="correct horse  battery "
    )


def test_pass_keeps_undecodable_bytes():
    command = parse_command(b"PASS caf\xe9\r\n")
    assert command.text.encode("utf-8", "surrogateescape") == b"caf\xe9"


def test_trailing_space_after_number_is_tolerated():
    assert parse_command(b"RETR 1 \r\n") == Command("RETR", number=1)


@pytest.mark.parametrize(
    "line",
    [b"", b"\r\n", b"HELO x\r\n", b"XYZZY\r\n", b"RE\r\n", b"R3TR 1\r\n",
     b"\x00\x01\x02\r\n", b"APOP alice 0123\r\n", b"\xff\xfe\r\n", b" STAT\r\n"],
)
def test_unknown_commands(line):
    assert parse_command(line) == InvalidCommand(None, replies.ERR_UNKNOWN_COMMAND)


@pytest.mark.parametrize(
    "line, verb",
    [
        (b"STAT 1\r\n", "STAT"),
        (b"QUIT now\r\n", "QUIT"),
        (b"LIST 1 2\r\n", "LIST"),
        (b"RETR\r\n", "RETR"),
        (b"DELE\r\n", "DELE"),
        (b"DELE 1 2\r\n", "DELE"),
        (b"TOP 1\r\n", "TOP"),
        (b"TOP 1 2 3\r\n", "TOP"),
        (b"USER\r\n", "USER"),
        (b"USER a b\r\n", "USER"),
        (b"PASS\r\n", "PASS"),
        (b"PASS \r\n", "PASS"),
        (b"AUTH PLAIN a b\r\n", "AUTH"),
        (b"AUTH PL\xc3\xa4IN\r\n", "AUTH"),
    ],
)
def test_bad_arguments(line, verb):
    assert parse_command(line) == InvalidCommand(verb, replies.ERR_BAD_ARGUMENTS)


@pytest.mark.parametrize(
    "line, verb",
    [
        (b"RETR one\r\n", "RETR"),
        (b"RETR -1\r\n", "RETR"),
        (b"RETR +1\r\n", "RETR"),
        (b"DELE 1.0\r\n", "DELE"),
        (b"LIST 0x1\r\n", "LIST"),
        (b"UIDL 1" + b"0" * 40 + b"\r\n", "UIDL"),
        (b"TOP 1 -5\r\n", "TOP"),
        (b"TOP x 5\r\n", "TOP"),
        ("RETR \u0661".encode() + b"\r\n", "RETR"),
    ],
)
def test_bad_numbers(line, verb):
    assert parse_command(line) == InvalidCommand(verb, replies.ERR_BAD_NUMBER)


def test_zero_is_a_number_the_session_then_refuses():
    # "no such message" is the session's answer; the grammar accepts digits.
    assert parse_command(b"RETR 0\r\n") == Command("RETR", number=0)


@given(st.binary(max_size=300))
def test_any_line_parses_to_a_command_or_an_error_reply(line):
    result = parse_command(line)
    if isinstance(result, InvalidCommand):
        assert result.reply.startswith(b"-ERR ")
    else:
        assert result.verb in VERBS
