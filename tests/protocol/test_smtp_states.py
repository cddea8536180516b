"""Every verb in every state: the gate answers 503 with the right text, 500 for unknown verbs."""

import pytest

from appliance.smtp import replies as R
from tests.protocol.smtp_wire import Wire

ALICE = "alice@example.org"


@pytest.fixture
def alice(server):
    server.add_user(ALICE)
    return server


def to_state(c: Wire, state: str) -> None:
    """Drive a fresh (greeted) connection into ``state``."""
    if state == "greeted":
        return
    c.ehlo()
    if state == "ready":
        return
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<a@remote.test>")
    if state == "mail":
        return
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    if state == "rcpt":
        return
    c.send_raw(b"BDAT 3\r\nabc")
    c.expect(R.bdat_chunk_ok(3))
    assert state == "bdat"


WRONG = [
    ("greeted", "MAIL FROM:<a@remote.test>", R.R503_NEED_HELO),
    ("greeted", f"RCPT TO:<{ALICE}>", R.R503_NEED_HELO),
    ("greeted", "DATA", R.R503_NEED_HELO),
    ("greeted", "STARTTLS", R.R503_NEED_HELO),
    ("greeted", "AUTH PLAIN", R.R503_NEED_HELO),
    ("greeted", "MAIL garbage", R.R503_NEED_HELO),  # the state is checked before the syntax
    ("ready", f"RCPT TO:<{ALICE}>", R.R503_NEED_MAIL),
    ("ready", "DATA", R.R503_NEED_MAIL),
    ("mail", "MAIL FROM:<b@remote.test>", R.R503_NESTED_MAIL),
    ("mail", "DATA", R.R503_NEED_RCPT),
    ("mail", "AUTH PLAIN", R.R503_AUTH_IN_TRANSACTION),
    ("mail", "STARTTLS", R.R503_BAD_SEQUENCE),
    ("rcpt", "MAIL FROM:<b@remote.test>", R.R503_NESTED_MAIL),
    ("rcpt", "AUTH LOGIN", R.R503_AUTH_IN_TRANSACTION),
    ("rcpt", "STARTTLS", R.R503_BAD_SEQUENCE),
    ("bdat", "DATA", R.R503_DATA_AFTER_BDAT),
    ("bdat", "MAIL FROM:<b@remote.test>", R.R503_NESTED_MAIL),
    ("bdat", f"RCPT TO:<{ALICE}>", R.R503_BAD_SEQUENCE),
    ("bdat", "EHLO again", R.R503_BAD_SEQUENCE),
    ("bdat", "HELO again", R.R503_BAD_SEQUENCE),
    ("bdat", "STARTTLS", R.R503_BAD_SEQUENCE),
    ("bdat", "AUTH PLAIN", R.R503_AUTH_IN_TRANSACTION),
]


@pytest.mark.parametrize("state, line, reply", WRONG, ids=[f"{s}-{l.split()[0]}" for s, l, _ in WRONG])
def test_wrong_state(alice, state, line, reply):
    c = Wire.open(alice)
    to_state(c, state)
    c.transact(reply, line)
    c.transact(R.R250_OK, "NOOP")  # the session goes on


@pytest.mark.parametrize("state", ["greeted", "ready", "mail"])
def test_bdat_in_wrong_state_still_consumes_its_chunk(alice, state):
    c = Wire.open(alice)
    to_state(c, state)
    c.send_raw(b"BDAT 6 LAST\r\nNOOP\r\n")  # the chunk looks like a command; it must not run
    c.expect(R.R503_NEED_HELO if state == "greeted" else R.R503_NEED_MAIL if state == "ready" else R.R503_NEED_RCPT)
    c.transact(R.R221_BYE, "QUIT")


@pytest.mark.parametrize("state", ["greeted", "ready", "mail", "rcpt", "bdat"])
def test_always_legal_verbs(alice, state):
    c = Wire.open(alice)
    to_state(c, state)
    c.transact(R.R250_OK, "NOOP")
    c.transact(R.R214_HELP, "HELP")
    c.transact(R.R252_CANNOT_VRFY, f"VRFY {ALICE}")
    c.transact(R.R252_CANNOT_VRFY, "EXPN staff@example.org")
    c.transact(R.R250_RESET, "RSET")
    c.transact(R.R503_NEED_HELO if state == "greeted" else R.R503_NEED_MAIL, f"RCPT TO:<{ALICE}>")
    c.transact(R.R221_BYE, "QUIT")
    assert c.is_closed()


@pytest.mark.parametrize("state", ["mail", "rcpt"])
def test_ehlo_resets_the_transaction(alice, state):
    c = Wire.open(alice)
    to_state(c, state)
    c.ehlo()
    c.transact(R.R503_NEED_MAIL, "DATA")


def test_unknown_verbs(alice):
    c = Wire.open(alice)
    c.transact(R.R500_UNKNOWN, "TURN")
    c.transact(R.R500_UNKNOWN, "XYZZY plugh")
    c.transact(R.R500_UNKNOWN, "")
    c.ehlo()
    c.transact(R.R500_UNKNOWN, "MAILFROM:<a@b.test>")


@pytest.mark.parametrize(
    "line, reply",
    [
        ("EHLO", R.R501_EHLO_SYNTAX),
        ("HELO", R.R501_HELO_SYNTAX),
        ("MAIL TO:<a@remote.test>", R.R501_MAIL_SYNTAX),
        ("MAIL FROM:a@remote.test", R.R501_MAIL_SYNTAX),
        ("MAIL FROM:<a@@remote.test>", R.R501_BAD_SENDER),
        ("MAIL FROM:<a@remote.test> FROBNICATE=1", R.R555_UNKNOWN_PARAMETER),
        ("MAIL FROM:<a@remote.test> SIZE=big", R.R501_BAD_PARAMETER),
        ("MAIL FROM:<a@remote.test> BODY=8BITMIME BODY=7BIT", R.R501_DUPLICATE_PARAMETER),
        ("RSET now", R.R501_NO_ARGUMENTS),
        ("QUIT please", R.R501_NO_ARGUMENTS),
        ("VRFY", R.R501_VRFY_SYNTAX),
        ("EXPN", R.R501_EXPN_SYNTAX),
        ("HELP FROBNICATE", R.R504_HELP_TOPIC),
        ("AUTH", R.R501_AUTH_SYNTAX),
    ],
)
def test_syntax_errors(alice, line, reply):
    c = Wire.open(alice)
    c.ehlo()
    c.transact(reply, line)
    c.transact(R.R250_OK, "NOOP")


def test_rcpt_syntax_errors(alice):
    c = Wire.open(alice)
    to_state(c, "mail")
    c.transact(R.R501_RCPT_SYNTAX, "RCPT FROM:<a@remote.test>")
    c.transact(R.R501_BAD_RECIPIENT, "RCPT TO:<>")
    c.transact(R.R501_BAD_RECIPIENT, "RCPT TO:<no-domain>")
    c.transact(R.R501_BAD_PARAMETER, f"RCPT TO:<{ALICE}> NOTIFY=NEVER,DELAY")
    c.transact(R.R555_UNKNOWN_PARAMETER, f"RCPT TO:<{ALICE}> SIZE=10")
    c.transact(R.R503_NEED_RCPT, "DATA")


def test_help_topics(alice):
    c = Wire.open(alice)
    c.transact(R.R214_HELP, "HELP")
    got = c.transact("214 2.0.0 MAIL FROM:<address>*", "HELP mail")
    assert b"SMTPUTF8" in got


def test_noop_takes_an_argument(alice):
    c = Wire.open(alice)
    c.transact(R.R250_OK, "NOOP whatever")


def test_first_line_of_another_protocol_closes(alice):
    c = Wire.open(alice)
    c.send("GET / HTTP/1.1")
    c.expect(R.R500_NOT_SMTP)
    assert c.is_closed()


def test_unknown_first_line_that_is_not_a_known_protocol_does_not_close(alice):
    c = Wire.open(alice)
    c.transact(R.R500_UNKNOWN, "HELLO")
    c.ehlo()
