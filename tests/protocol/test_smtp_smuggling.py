"""SMTP smuggling and STARTTLS injection: nothing but <CRLF>.<CRLF> ends a message, and
nothing sent before the TLS handshake is ever run."""

import pytest

from appliance.smtp import replies as R
from tests.protocol.smtp_wire import Wire, inbox

ALICE = "alice@example.org"

# Every way a bare CR or LF can imitate the end of data (the RFC's end is \r\n.\r\n).
FAKE_ENDS = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r",
    b"\r.\r\n",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\n.\r",
    b"\r.\n",
    b"\r\n.\r\r\n",
    b"\r\n.\n\r\n",
    b"\n\n.\n\n",
    b"\r\r\n.\r\r\n",
]


def smuggling_content(fake_end: bytes) -> bytes:
    return (b"Subject: first\r\n\r\nfirst message" + fake_end
            + f"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n".encode()
            + b"Subject: smuggled\r\n\r\nsmuggled message\r\n.\r\n")


def send_content(server, content: bytes) -> Wire:
    c = Wire.open(server)
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<someone@remote.test>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(content)
    return c


@pytest.mark.parametrize("fake_end", FAKE_ENDS, ids=[repr(e)[2:-1] for e in FAKE_ENDS])
def test_reject_policy_refuses_and_never_makes_a_second_message(server, fake_end):
    server.add_user(ALICE)
    c = send_content(server, smuggling_content(fake_end))
    c.expect(R.R550_BARE_NEWLINE)
    c.transact(R.R250_OK, "NOOP")  # exactly one reply came for all of it
    assert inbox(server, ALICE) == []


@pytest.mark.parametrize("fake_end", FAKE_ENDS, ids=[repr(e)[2:-1] for e in FAKE_ENDS])
def test_normalize_policy_keeps_it_all_in_one_message(make_server, fake_end):
    server = make_server(smtp={"bare_newline": "normalize"})
    server.add_user(ALICE)
    c = send_content(server, smuggling_content(fake_end))
    c.expect("250 2.0.0 OK queued as *")
    c.transact(R.R250_OK, "NOOP")
    [raw] = inbox(server, ALICE)
    assert b"smuggled message" in raw and b"\r\nSubject: first\r\n" in raw
    assert raw.count(b"\r") == raw.count(b"\n") == raw.count(b"\r\n")  # every line ends in CRLF


def test_the_real_end_marker_does_end_the_message(server):
    # the control experiment: with a genuine <CRLF>.<CRLF> the second transaction is real
    server.add_user(ALICE)
    c = send_content(server, smuggling_content(b"\r\n.\r\n"))
    c.expect("250 *")
    c.expect(R.R250_SENDER_OK)
    c.expect(R.R250_RCPT_OK)
    c.expect(R.R354_START_DATA)
    c.expect("250 *")
    assert len(inbox(server, ALICE)) == 2


def test_normalize_unstuffs_lines_after_bare_newlines(make_server):
    server = make_server(smtp={"bare_newline": "normalize"})
    server.add_user(ALICE)
    c = send_content(server, b"Subject: lf\n\n..dot\nline\n\r\n.\r\n")
    c.expect("250 *")
    assert inbox(server, ALICE)[0].endswith(b"Subject: lf\r\n\r\n.dot\r\nline\r\n\r\n")


def test_bare_newline_in_bdat_follows_the_policy(server):
    server.add_user(ALICE)
    c = Wire.open(server)
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<someone@remote.test>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    content = b"Subject: x\n\nbody\n"
    c.send_raw(b"BDAT %d LAST\r\n" % len(content) + content)
    c.expect(R.R550_BARE_NEWLINE)
    assert inbox(server, ALICE) == []


# --- STARTTLS injection (RFC 3207 §4.2, CVE-2011-0411 and friends) -------------------------------


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_command_pipelined_behind_starttls_is_never_run(server, listener):
    server.add_user(ALICE)
    c = Wire.open(server, listener)
    c.ehlo()
    c.send_raw(b"STARTTLS\r\nMAIL FROM:<someone@remote.test>\r\nRCPT TO:<" + ALICE.encode() + b">\r\n")
    c.expect(R.R220_READY_TLS)
    c.sock = server.tls_context().wrap_socket(c.sock, server_hostname=server.config.server.hostname)
    c.ehlo()
    # Had MAIL run, this RCPT would be accepted (port 25) or the DATA would be legal.
    c.transact(R.R503_NEED_MAIL, f"RCPT TO:<{ALICE}>")
    c.transact(R.R503_NEED_MAIL, "DATA")


def test_starttls_forgets_the_ehlo_name_and_transaction(server):
    server.add_user(ALICE)
    c = Wire.open(server)
    c.ehlo("before.tls")
    c.starttls(server)
    c.transact(R.R503_NEED_HELO, "MAIL FROM:<someone@remote.test>")
    c.ehlo("after.tls")
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<someone@remote.test>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: tls\r\n\r\nx\r\n.\r\n")
    c.expect("250 *")
    raw = inbox(server, ALICE)[0]
    assert b"from after.tls" in raw and b"with ESMTPS id" in raw and b"(TLSv1." in raw


def test_no_starttls_inside_tls(server):
    c = Wire.open(server, "smtps")
    assert "STARTTLS" not in c.ehlo()
    c.transact(R.R503_TLS_ACTIVE, "STARTTLS")
    c = Wire.open(server)
    c.ehlo()
    c.starttls(server)
    assert "STARTTLS" not in c.ehlo()
    c.transact(R.R503_TLS_ACTIVE, "STARTTLS")
