"""POP3 reply builders: multi-line replies, sizes and byte-stuffing."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.pop3 import replies


def test_every_reply_line_is_one_short_status_line():
    named = [v for k, v in vars(replies).items() if k.isupper() and isinstance(v, bytes)]
    assert len(named) > 20
    for line in named:
        assert line.startswith((b"+OK", b"-ERR", b"+ "))
        assert b"\r" not in line and b"\n" not in line
        # RFC 2449 §4: a response line is at most 512 octets with its CRLF.
        assert len(line) <= 510


def test_response_codes_are_bracketed_after_err():
    assert replies.ERR_AUTH_FAILED.startswith(b"-ERR [AUTH] ")
    assert replies.ERR_TLS_REQUIRED.startswith(b"-ERR [AUTH] ")
    assert replies.ERR_SYS_TEMP.startswith(b"-ERR [SYS/TEMP] ")
    assert replies.ERR_BUSY.startswith(b"-ERR [SYS/TEMP] ")


def test_single_line_builders():
    assert replies.stat(2, 320) == b"+OK 2 320"
    assert replies.scan_line(2, 200) == b"+OK 2 200"
    assert replies.uidl_line(1, b"7.3") == b"+OK 1 7.3"
    assert replies.retr_line(120) == b"+OK 120 octets"
    assert replies.greeting("mail.example.org") == b"+OK mail.example.org POP3 server ready"


def test_unique_id_is_in_the_rfc_alphabet():
    uid = replies.unique_id(4294967295, 4294967295)
    assert 1 <= len(uid) <= 70
    assert all(0x21 <= c <= 0x7E for c in uid)
    assert replies.unique_id(1, 23) != replies.unique_id(12, 3)


def test_scan_listing_as_rfc_1939_example():
    assert replies.scan_listing([(1, 120), (2, 200)]) == [
        b"+OK 2 messages (320 octets)", b"1 120", b"2 200", b".",
    ]


def test_scan_listing_of_an_empty_maildrop():
    assert replies.scan_listing([]) == [b"+OK 0 messages (0 octets)", b"."]


def test_scan_listing_accepts_a_generator():
    lines = replies.scan_listing((n, 10) for n in (1, 3))
    assert lines == [b"+OK 2 messages (20 octets)", b"1 10", b"3 10", b"."]


def test_uidl_listing():
    assert replies.uidl_listing([(1, b"5.1"), (3, b"5.9")]) == [
        b"+OK Unique-ID listing follows", b"1 5.1", b"3 5.9", b".",
    ]


def test_capa_before_tls_without_plaintext_login():
    lines = replies.capa(stls=True, login=False, implementation="Kotakpos")
    assert lines[0].startswith(b"+OK") and lines[-1] == b"."
    body = lines[1:-1]
    for cap in (b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING",
                b"STLS", b"IMPLEMENTATION Kotakpos"):
        assert cap in body
    assert b"USER" not in body and b"SASL PLAIN" not in body


def test_capa_inside_tls():
    body = replies.capa(stls=False, login=True, implementation="Kotakpos")[1:-1]
    assert b"USER" in body and b"SASL PLAIN" in body and b"STLS" not in body


@pytest.mark.parametrize(
    "raw, text",
    [
        (b"", b""),
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\r\nb", b"a\r\nb\r\n"),
        (b"no newline", b"no newline\r\n"),
        (b"x\r", b"x\r\r\n"),
    ],
)
def test_canonical_form_ends_in_crlf(raw, text):
    assert replies.canonical(raw) == text


@pytest.mark.parametrize(
    "text, wire",
    [
        (b"", b".\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"x\r\n.\r\n..y\r\n", b"x\r\n..\r\n...y\r\n.\r\n"),
        (b"a.b\r\n .c\r\n", b"a.b\r\n .c\r\n.\r\n"),
    ],
)
def test_byte_stuffing(text, wire):
    assert replies.stuffed(text) == wire


def test_stuffing_is_undone_exactly_by_the_client_rule():
    # RFC 1939 §3 (and poplib): a line starting with ".." loses one dot.
    text = b"Subject: x\r\n\r\n.\r\n..\r\n.leading\r\nplain\r\n"
    wire = replies.stuffed(text)
    lines = wire.split(b"\r\n")[:-2]  # drop the terminator and the empty tail
    assert lines[-1] != b"."
    unstuffed = [line[1:] if line.startswith(b"..") else line for line in lines]
    assert b"\r\n".join(unstuffed) + b"\r\n" == text


MESSAGE = b"From: a@x\r\nSubject: s\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"


@pytest.mark.parametrize(
    "lines, expected",
    [
        (0, b"From: a@x\r\nSubject: s\r\n\r\n"),
        (2, b"From: a@x\r\nSubject: s\r\n\r\nline 1\r\nline 2\r\n"),
        (3, MESSAGE),
        (10**9, MESSAGE),
    ],
)
def test_top(lines, expected):
    assert replies.top(MESSAGE, lines) == expected


def test_top_of_a_message_without_body():
    assert replies.top(b"From: a@x\r\n", 5) == b"From: a@x\r\n"


def test_top_of_a_message_without_header():
    assert replies.top(b"\r\nbody 1\r\nbody 2\r\n", 1) == b"\r\nbody 1\r\n"


@given(st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
                max_size=20),
       st.booleans())
def test_stuffed_messages_end_only_at_their_terminator(lines, final_crlf):
    raw = b"\r\n".join(lines) + (b"\r\n" if final_crlf else b"")
    text = replies.canonical(raw)
    wire = replies.stuffed(text)
    # The terminator appears exactly once, at the very end.
    assert (b"\r\n" + wire).find(b"\r\n.\r\n") == len(wire) - 3
    body = wire[:-3].split(b"\r\n")[:-1] if wire[:-3] else []
    assert b"".join(line[1:] + b"\r\n" if line.startswith(b".") else line + b"\r\n"
                    for line in body) == text
