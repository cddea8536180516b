"""SMTP conversations: the classic transaction, pipelining, DATA framing and content."""

import re
import socket
import threading
import time

import pytest

from appliance.smtp import replies as R
from tests.protocol.smtp_wire import Wire, body_of, inbox

ALICE = "alice@example.org"


@pytest.fixture
def alice(server):
    server.add_user(ALICE)
    return server


def start_data(c: Wire, rcpt: str = ALICE) -> None:
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<sender@remote.test>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{rcpt}>")
    c.transact(R.R354_START_DATA, "DATA")


def test_classic_transaction(alice):
    c = Wire.open(alice, greet=False)
    assert c.read_reply() == b"220 mail.example.org ESMTP Kotakpos\r\n"
    extensions = c.ehlo()
    for keyword in ("PIPELINING", "SIZE 37748736", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                    "CHUNKING", "DSN", "STARTTLS"):
        assert keyword in extensions
    assert not any(e.startswith("AUTH") for e in extensions)  # no passwords in plaintext
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<sender@remote.test>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: hello\r\n\r\nHi Alice.\r\n.\r\n")
    c.expect("250 2.0.0 OK queued as *")
    c.transact(R.R221_BYE, "QUIT")
    assert c.is_closed()
    [raw] = inbox(alice, ALICE)
    assert raw.startswith(b"Return-Path: <sender@remote.test>\r\n")
    # (the MDA's filters may add their own headers above ours)
    assert b"Received: from client.test ([127.0.0.1])\r\n\tby mail.example.org (Kotakpos) with ESMTP id " in raw
    assert b"\tfor <alice@example.org>;\r\n" in raw
    assert raw.endswith(b"Subject: hello\r\n\r\nHi Alice.\r\n")


def test_250_means_stored(alice):
    c = Wire.open(alice)
    start_data(c)
    c.send_raw(b"Subject: durable\r\n\r\nx\r\n.\r\n")
    c.expect("250 *")
    # no waiting: the reply came after the commit
    assert len(inbox(alice, ALICE)) == 1


def test_helo_then_plain_transaction_without_parameters(alice):
    c = Wire.open(alice)
    c.transact("250 mail.example.org greets old.client", "HELO old.client")
    c.transact(R.R555_UNKNOWN_PARAMETER, "MAIL FROM:<a@remote.test> BODY=8BITMIME")
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<a@remote.test>")
    c.transact(R.R555_UNKNOWN_PARAMETER, f"RCPT TO:<{ALICE}> NOTIFY=NEVER")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: x\r\n\r\ny\r\n.\r\n")
    c.expect("250 *")
    assert b"with SMTP id" in inbox(alice, ALICE)[0]


def test_null_sender_for_bounces(alice):
    c = Wire.open(alice)
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: bounce\r\n\r\nx\r\n.\r\n")
    c.expect("250 *")
    assert inbox(alice, ALICE)[0].startswith(b"Return-Path: <>\r\n")


def test_dot_unstuffing_is_exact(alice):
    c = Wire.open(alice)
    start_data(c)
    c.send_raw(b"Subject: dots\r\n\r\n..\r\n...\r\n..leading\r\n.single\r\nmid.dle\r\n. \r\n.\r\n")
    c.expect("250 *")
    assert body_of(inbox(alice, ALICE)[0]) == b".\r\n..\r\n.leading\r\nsingle\r\nmid.dle\r\n \r\n"


def test_empty_message(alice):
    c = Wire.open(alice)
    start_data(c)
    c.send_raw(b".\r\n")
    c.expect("250 *")
    # nothing after our Received header (its last folded line is the date)
    assert re.search(rb"\r\n\tfor <alice@example.org>;\r\n\t[^\r\n]+\r\n\Z", inbox(alice, ALICE)[0])


def test_end_marker_split_across_packets(alice):
    c = Wire.open(alice)
    start_data(c)
    for piece in (b"Subject: slow\r\n\r\nbody\r", b"\n", b".", b"\r", b"\n"):
        c.send_raw(piece)
        time.sleep(0.05)
    c.expect("250 *")
    assert body_of(inbox(alice, ALICE)[0]) == b"body\r\n"


def test_several_messages_per_connection(alice):
    c = Wire.open(alice)
    c.ehlo()
    for n in range(3):
        c.transact(R.R250_SENDER_OK, "MAIL FROM:<a@remote.test>")
        c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
        c.transact(R.R354_START_DATA, "DATA")
        c.send_raw(b"Subject: %d\r\n\r\nx\r\n.\r\n" % n)
        c.expect("250 *")
    assert [m.split(b"Subject: ")[1][:1] for m in inbox(alice, ALICE)] == [b"0", b"1", b"2"]


def test_duplicate_recipient_gets_one_copy(alice):
    c = Wire.open(alice)
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<a@remote.test>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    c.transact(R.R250_RCPT_OK, "RCPT TO:<Alice@EXAMPLE.org>")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: once\r\n\r\nx\r\n.\r\n")
    c.expect("250 *")
    raw = inbox(alice, ALICE)
    assert len(raw) == 1 and b"\tfor <" not in raw[0]  # several RCPTs: no "for" (Bcc privacy)


# --- pipelining (RFC 2920) ----------------------------------------------------------------


def test_pipelined_batch_answered_in_order_in_one_packet(alice):
    c = Wire.open(alice)
    c.ehlo()
    c.send_raw(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<nobody@example.org>\r\n"
               + f"RCPT TO:<{ALICE}>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\n".encode())
    time.sleep(0.3)
    packet = c.sock.recv(65536)
    assert packet == b"".join(map(R.format_reply, [
        R.R250_SENDER_OK, R.R550_NO_SUCH_USER, R.R250_RCPT_OK, R.R554_RELAY_DENIED, R.R354_START_DATA]))
    # the next transaction pipelined right behind the end of data
    c.send_raw(b"Subject: one\r\n\r\nx\r\n.\r\nMAIL FROM:<b@remote.test>\r\n"
               + f"RCPT TO:<{ALICE}>\r\nDATA\r\n".encode())
    c.expect("250 2.0.0 OK queued as *")
    c.expect(R.R250_SENDER_OK)
    c.expect(R.R250_RCPT_OK)
    c.expect(R.R354_START_DATA)
    c.send_raw(b"Subject: two\r\n\r\ny\r\n.\r\nQUIT\r\n")
    c.expect("250 *")
    c.expect(R.R221_BYE)
    assert len(inbox(alice, ALICE)) == 2


def test_pipelined_failure_does_not_stop_the_batch(alice):
    c = Wire.open(alice)
    c.ehlo()
    c.send_raw(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\nNOOP\r\n")
    c.expect(R.R250_SENDER_OK)
    c.expect(R.R550_NO_SUCH_USER)
    c.expect(R.R503_NEED_RCPT)  # no valid recipient: DATA refused, nothing swallowed as content
    c.expect(R.R250_OK)


# --- BDAT (RFC 3030) ------------------------------------------------------------------------


def start_bdat(c: Wire, mail_params: str = "") -> None:
    c.ehlo()
    c.transact(R.R250_SENDER_OK, f"MAIL FROM:<a@remote.test>{mail_params}")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")


def test_bdat_chunks(alice):
    c = Wire.open(alice)
    start_bdat(c)
    head = b"Subject: chunks\r\n\r\n"
    c.send_raw(b"BDAT %d\r\n" % len(head) + head)
    c.expect(R.bdat_chunk_ok(len(head)))
    c.send_raw(b"BDAT 12\r\n.not stuffed")
    c.expect(R.bdat_chunk_ok(12))
    c.send_raw(b"BDAT 2 LAST\r\n\r\n")
    c.expect("250 2.0.0 OK queued as *")
    assert body_of(inbox(alice, ALICE)[0]) == b".not stuffed\r\n"


def test_bdat_pipelined(alice):
    c = Wire.open(alice)
    c.ehlo()
    c.send_raw(f"MAIL FROM:<a@remote.test>\r\nRCPT TO:<{ALICE}>\r\n".encode()
               + b"BDAT 10\r\nSubject: x" + b"BDAT 0 LAST\r\nNOOP\r\n")
    c.expect(R.R250_SENDER_OK)
    c.expect(R.R250_RCPT_OK)
    c.expect(R.bdat_chunk_ok(10))
    c.expect("250 2.0.0 OK queued as *")
    c.expect(R.R250_OK)
    assert inbox(alice, ALICE)[0].endswith(b"Subject: x")


def test_bdat_binarymime_is_not_refused_for_bare_newlines(alice):
    c = Wire.open(alice)
    start_bdat(c, " BODY=BINARYMIME")
    content = b"Subject: bin\r\nContent-Type: application/octet-stream\r\n\r\n\x00\n\r\x01\xff"
    c.send_raw(b"BDAT %d LAST\r\n" % len(content) + content)
    c.expect("250 *")
    # binary octets survive; line ends are the store's business (it keeps CRLF for IMAP)
    assert inbox(alice, ALICE)[0].endswith(b"\x00\r\n\r\n\x01\xff")


def test_binarymime_refuses_data(alice):
    c = Wire.open(alice)
    start_bdat(c, " BODY=BINARYMIME")
    c.transact(R.R503_BINARYMIME_NEEDS_BDAT, "DATA")


def test_bdat_declared_size_shorter_than_sent(alice):
    c = Wire.open(alice)
    start_bdat(c)
    # the client lied: the chunk is 3 octets, the rest is read as commands again
    c.send_raw(b"BDAT 3 LAST\r\nabcdef\r\n")
    c.expect("250 2.0.0 OK queued as *")
    c.expect(R.R500_UNKNOWN)  # "def"
    c.transact(R.R250_OK, "NOOP")
    assert inbox(alice, ALICE)[0].endswith(b"\r\nabc")


def test_bdat_with_unreadable_size_closes(alice):
    c = Wire.open(alice)
    start_bdat(c)
    c.send_raw(b"BDAT twelve\r\nsome data\r\n")
    c.expect(R.R501_BDAT_SYNTAX)
    assert c.is_closed()


def test_data_after_bdat_refused(alice):
    c = Wire.open(alice)
    start_bdat(c)
    c.send_raw(b"BDAT 4\r\nabcd")
    c.expect(R.bdat_chunk_ok(4))
    c.transact(R.R503_DATA_AFTER_BDAT, "DATA")
    c.transact(R.R250_RESET, "RSET")  # RSET abandons the chunks
    c.transact(R.R503_NEED_MAIL, "DATA")
    assert inbox(alice, ALICE) == []


# --- other clients keep being served ------------------------------------------------------------


def test_garbage_on_one_connection_does_not_disturb_another(alice):
    bad = Wire.open(alice)
    good = Wire.open(alice)
    good.ehlo()
    bad.send_raw(bytes(range(256)) * 40 + b"\r\n")
    good.transact(R.R250_SENDER_OK, "MAIL FROM:<a@remote.test>")
    bad.send_raw(b"\x00\x00\x00MAIL FROM:<a@b>\r\n")
    good.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    good.transact(R.R354_START_DATA, "DATA")
    good.send_raw(b"Subject: fine\r\n\r\nx\r\n.\r\n")
    good.expect("250 *")
    assert len(inbox(alice, ALICE)) == 1


def test_client_vanishing_mid_data_stores_nothing(alice):
    c = Wire.open(alice)
    start_data(c)
    c.send_raw(b"Subject: half\r\n\r\nand then")
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    d = Wire.open(alice)  # the server is still there
    d.transact(R.R250_OK, "NOOP")
    assert inbox(alice, ALICE) == []


def test_shutdown_lets_the_message_in_flight_finish(alice):
    c = Wire.open(alice)
    start_data(c)
    c.send_raw(b"Subject: in flight\r\n\r\nfirst half ")
    stopper = threading.Thread(target=alice.stop)
    stopper.start()
    time.sleep(0.3)  # the server is stopping now, and our session is inside DATA
    c.send_raw(b"second half\r\n.\r\n")
    c.expect("250 2.0.0 OK queued as *")
    c.expect(R.R421_SHUTTING_DOWN)
    assert c.is_closed()
    stopper.join(10)
    assert not stopper.is_alive()


@pytest.mark.in_process(reason="it replaces a method of the server's store")
def test_store_failure_gives_451_and_the_session_goes_on(alice, monkeypatch):
    real_deliver = alice.store.deliver
    calls = []

    def failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")
        return real_deliver(*args, **kwargs)

    monkeypatch.setattr(alice.store, "deliver", failing_once)
    c = Wire.open(alice)
    start_data(c)
    c.send_raw(b"Subject: unlucky\r\n\r\nx\r\n.\r\n")
    c.expect(R.R451_LOCAL_ERROR)  # generic text: no exception details for the client
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<sender@remote.test>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: retry\r\n\r\nx\r\n.\r\n")
    c.expect("250 *")
    assert [b"retry" in m for m in inbox(alice, ALICE)] == [True]
