"""Bounds: sizes, line lengths, recipients, messages, errors, timeouts, garbage."""

import time

import pytest

from appliance.smtp import replies as R
from tests.protocol.smtp_wire import Wire, inbox

ALICE = "alice@example.org"


def ready(c: Wire) -> Wire:
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<someone@remote.test>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    return c


@pytest.fixture
def small(make_server):
    server = make_server(limits={"message_size": 2000})
    server.add_user(ALICE)
    return server


def test_size_is_advertised_and_declared_size_checked(small):
    c = Wire.open(small)
    assert "SIZE 2000" in c.ehlo()
    c.transact(R.message_too_big(2000), "MAIL FROM:<someone@remote.test> SIZE=2001")
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<someone@remote.test> SIZE=2000")


def test_oversize_data_is_read_to_the_end_and_refused(small):
    c = ready(Wire.open(small))
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 1 + (b"y" * 70 + b"\r\n") * 200 + b".\r\n")
    c.expect(R.message_too_big(2000))
    # the session goes on, and a message that fits is accepted
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<someone@remote.test>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: small\r\n\r\nok\r\n.\r\n")
    c.expect("250 *")
    assert len(inbox(small, ALICE)) == 1


def test_oversize_bdat_refused_and_pipelined_chunks_discarded(small):
    c = ready(Wire.open(small))
    c.send_raw(b"BDAT 1500\r\n" + b"a" * 1500 + b"BDAT 1500\r\n" + b"b" * 1500 + b"BDAT 4 LAST\r\nNOOP")
    c.expect(R.bdat_chunk_ok(1500))
    c.expect(R.message_too_big(2000))
    c.expect(R.R503_NEED_MAIL)  # the transaction ended; the chunk "NOOP" was read and dropped
    c.transact(R.R250_OK, "NOOP")
    assert inbox(small, ALICE) == []


def test_text_lines_longer_than_998_refused(server):
    server.add_user(ALICE)
    c = ready(Wire.open(server))
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: long\r\n\r\n" + b"x" * 998 + b"\r\n.\r\n")
    c.expect("250 *")
    c = ready(Wire.open(server))
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: long\r\n\r\n" + b"x" * 999 + b"\r\n.\r\n")
    c.expect(R.R550_LINE_TOO_LONG)
    assert len(inbox(server, ALICE)) == 1


def test_100kb_command_line(server):
    c = Wire.open(server)
    c.send_raw(b"EHLO " + b"a" * 100_000 + b"\r\n")
    c.expect(R.R500_LINE_TOO_LONG)
    c.ehlo()


def test_nul_bytes_and_binary_garbage(server):
    c = Wire.open(server)
    c.send_raw(b"EHLO \x00evil\r\n")
    c.expect(R.R500_BAD_BYTES)
    c.send_raw(b"\xff\xfe\xfd\x80garbage\r\n")
    c.expect(R.R500_UNKNOWN)
    c.ehlo()
    c.send_raw(b"MAIL FROM:<a\x00b@remote.test>\r\n")
    c.expect(R.R500_BAD_BYTES)
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<ab@remote.test>")


def test_too_many_recipients(make_server):
    server = make_server(smtp={"max_recipients": 2})
    server.add_user(ALICE)
    server.add_user("bob@example.org")
    server.add_user("carol@example.org")
    c = ready(Wire.open(server))
    c.transact(R.R250_RCPT_OK, "RCPT TO:<bob@example.org>")
    c.transact(R.R452_TOO_MANY_RCPTS, "RCPT TO:<carol@example.org>")
    c.transact(R.R354_START_DATA, "DATA")


def test_too_many_messages_per_session(make_server):
    server = make_server(smtp={"max_messages_per_session": 1})
    server.add_user(ALICE)
    c = ready(Wire.open(server))
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: one\r\n\r\nx\r\n.\r\n")
    c.expect("250 *")
    c.transact(R.R421_TOO_MANY_MESSAGES, "MAIL FROM:<someone@remote.test>")
    assert c.is_closed()


def test_too_many_errors_closes(make_server):
    server = make_server(smtp={"max_errors": 3})
    c = Wire.open(server)
    c.transact(R.R500_UNKNOWN, "ONE")
    c.transact(R.R503_NEED_HELO, "DATA")
    c.send("THREE")
    c.expect(R.R500_UNKNOWN)
    c.expect(R.R421_TOO_MANY_ERRORS)
    assert c.is_closed()


def test_idle_timeout(make_server):
    server = make_server(smtp={"command_timeout": 0.5})
    c = Wire.open(server)
    start = time.monotonic()
    c.expect(R.R421_TIMEOUT)
    assert c.is_closed()
    assert time.monotonic() - start < 5


def test_data_timeout(make_server):
    server = make_server(smtp={"data_timeout": 0.5})
    server.add_user(ALICE)
    c = ready(Wire.open(server))
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: stalled\r\n\r\nand then nothing")
    c.expect(R.R421_TIMEOUT)
    assert c.is_closed()
    assert inbox(server, ALICE) == []


def test_one_client_over_the_limits_others_unaffected(small):
    bad = ready(Wire.open(small))
    good = ready(Wire.open(small))
    bad.transact(R.R354_START_DATA, "DATA")
    good.transact(R.R354_START_DATA, "DATA")
    bad.send_raw(b"z" * 500_000)
    good.send_raw(b"Subject: good\r\n\r\nfine\r\n.\r\n")
    good.expect("250 *")
    bad.send_raw(b"\r\n.\r\n")
    bad.expect(R.message_too_big(2000))
    assert len(inbox(small, ALICE)) == 1


def test_junk_commands_count_as_errors_past_the_limit(make_server):
    server = make_server(smtp={"junk_command_limit": 5, "max_errors": 3})
    c = Wire.open(server)
    c.ehlo()
    for _ in range(5):
        c.transact(R.R250_OK, "NOOP")
    c.transact(R.R250_OK, "NOOP")  # the 6th and 7th still get their answer, and count
    c.transact(R.R250_RESET, "RSET")
    c.send("NOOP")
    c.expect(R.R421_TOO_MANY_ERRORS)
    assert c.is_closed()
