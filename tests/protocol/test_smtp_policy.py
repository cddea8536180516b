"""Who may send what where: relay refusal on 25, submission with STARTTLS and AUTH, aliases."""

import base64
import json
import logging

import pytest

from appliance.smtp import replies as R
from tests.conftest import PASSWORD, listed_session
from tests.protocol.smtp_wire import Wire, body_of, inbox, relay_test_server

ALICE = "alice@example.org"
BOB = "bob@example.org"


@pytest.fixture
def office(make_server):
    server = relay_test_server(make_server)
    server.add_user(ALICE)
    server.add_user(BOB)
    return server


def mail_from_outside(c: Wire) -> None:
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<someone@remote.test>")


def plain(user: str, password: str = PASSWORD) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def submission(server, user: str = ALICE, listener: str = "submission") -> Wire:
    c = Wire.open(server, listener)
    if listener == "submission":
        c.ehlo()
        c.starttls(server)
    c.ehlo()
    c.transact(R.R235_AUTH_OK, f"AUTH PLAIN {plain(user)}")
    return c


def send(c: Wire, sender: str, recipients: list[str], content: bytes) -> bytes:
    c.transact(R.R250_SENDER_OK, f"MAIL FROM:<{sender}>")
    for r in recipients:
        c.transact(R.R250_RCPT_OK, f"RCPT TO:<{r}>")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(content + b".\r\n")
    return c.expect("250 2.0.0 OK queued as *")


# --- port 25: no open relay -----------------------------------------------------------------

TRICKS = [
    "victim@remote.test",
    "victim@REMOTE.TEST",
    "victim%remote.test@example.org",
    "victim%remote.test@EXAMPLE.ORG",
    "remote.test!victim@example.org",
    '"victim@remote.test"@example.org',
    '"victim%remote.test"@example.org',
    "@example.org:victim@remote.test",
    "@example.org,@relay.test:victim@remote.test",
    "@remote.test:alice@example.org",
    "victim@[127.0.0.1]",
    "victim@[IPv6:::1]",
    "alice@example.org.",
    "victim@remote.test.",
    "victim@example.org.remote.test",
]


@pytest.mark.parametrize("address", TRICKS)
def test_no_relay_whatever_the_trick(office, address):
    c = Wire.open(office)
    mail_from_outside(c)
    c.transact(R.R554_RELAY_DENIED, f"RCPT TO:<{address}>")
    c.transact(R.R503_NEED_RCPT, "DATA")
    assert office.store.list_queue() == []


def test_local_domain_in_any_case_is_local(office):
    c = Wire.open(office)
    c.ehlo()
    send(c, "someone@remote.test", ["ALICE@Example.ORG"], b"Subject: case\r\n\r\nx\r\n")
    assert len(inbox(office, ALICE)) == 1


def test_unknown_local_recipient_refused_at_rcpt(office):
    c = Wire.open(office)
    mail_from_outside(c)
    c.transact(R.R550_NO_SUCH_USER, "RCPT TO:<carol@example.org>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{BOB}>")


def test_alias_expands_to_every_member(office):
    office.store.add_alias("team@example.org", [ALICE, BOB])
    c = Wire.open(office)
    c.ehlo()
    send(c, "someone@remote.test", ["team@example.org"], b"Subject: team\r\n\r\nx\r\n")
    assert len(inbox(office, ALICE)) == 1 and len(inbox(office, BOB)) == 1


def test_catch_all(office):
    office.store.add_alias("@example.org", [BOB])
    c = Wire.open(office)
    c.ehlo()
    send(c, "someone@remote.test", ["whoever@example.org", ALICE], b"Subject: catch\r\n\r\nx\r\n")
    assert len(inbox(office, BOB)) == 1 and len(inbox(office, ALICE)) == 1


def test_alias_to_outside_address_is_queued_with_local_copy(office):
    office.store.add_alias("alice@example.org", ["alice.phone@remote.test"])
    c = Wire.open(office)
    c.ehlo()
    send(c, "someone@remote.test", [ALICE], b"Subject: fwd\r\n\r\nx\r\n")
    assert len(inbox(office, ALICE)) == 1
    [row] = office.store.list_queue()
    assert row.recipient == "alice.phone@remote.test" and row.sender == "someone@remote.test"


def test_postmaster_without_domain(office):
    office.add_user("postmaster@example.org")
    c = Wire.open(office)
    c.ehlo()
    send(c, "someone@remote.test", ["Postmaster"], b"Subject: pm\r\n\r\nx\r\n")
    assert len(inbox(office, "postmaster@example.org")) == 1


def test_postmaster_of_every_local_domain_reaches_the_first_user_without_an_alias(office):
    """RFC 5321 §4.5.1; alice was created first, so she is the administrator by default."""
    office.store.add_domain("example.net")
    c = Wire.open(office)
    c.ehlo()
    send(c, "someone@remote.test", ["postmaster@example.org", "PostMaster@example.net"], b"Subject: pm\r\n\r\nx\r\n")
    send(c, "someone@remote.test", ["postmaster"], b"Subject: pm2\r\n\r\nx\r\n")
    assert len(inbox(office, ALICE)) == 2 and inbox(office, BOB) == []
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<someone@remote.test>")
    c.transact(R.R550_NO_SUCH_USER, "RCPT TO:<postmistress@example.org>")  # only postmaster is special


def test_postmaster_goes_to_the_configured_admin_address_unless_an_alias_says(make_server):
    server = relay_test_server(make_server, server={"admin_address": BOB})
    server.add_user(ALICE)
    server.add_user(BOB)
    server.store.add_domain("example.net")
    server.store.add_alias("postmaster@example.net", [ALICE])
    c = Wire.open(server)
    c.ehlo()
    send(c, "someone@remote.test", ["postmaster@example.org"], b"Subject: to bob\r\n\r\nx\r\n")
    send(c, "someone@remote.test", ["postmaster@example.net"], b"Subject: to alice\r\n\r\nx\r\n")
    [to_bob] = inbox(server, BOB)
    [to_alice] = inbox(server, ALICE)
    assert b"Subject: to bob" in to_bob and b"Subject: to alice" in to_alice


def test_trusted_network_may_relay_without_auth(make_server):
    server = relay_test_server(make_server, auth={"trusted_networks": ["127.0.0.0/8"]})
    c = Wire.open(server)
    c.ehlo()
    send(c, "someone@remote.test", ["friend@remote.test"], b"Subject: out\r\n\r\nx\r\n")
    assert [r.recipient for r in server.store.list_queue()] == ["friend@remote.test"]


def test_utf8_addresses_need_smtputf8(office):
    c = Wire.open(office)
    c.ehlo()
    c.transact(R.R553_UTF8_NEEDS_SMTPUTF8, "MAIL FROM:<jörg@bücher.test>")
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<jörg@bücher.test> SMTPUTF8")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw("Subject: grüße\r\n\r\nhallo\r\n.\r\n".encode())
    c.expect("250 *")
    raw = inbox(office, ALICE)[0]
    assert raw.startswith("Return-Path: <jörg@bücher.test>".encode()) and b"with UTF8SMTP id" in raw


def test_vrfy_and_expn_only_for_authenticated_users(office):
    office.store.add_alias("team@example.org", [ALICE, BOB])
    c = Wire.open(office)
    c.ehlo()
    c.transact(R.R252_CANNOT_VRFY, f"VRFY {BOB}")
    c.transact(R.R252_CANNOT_VRFY, "VRFY nobody@example.org")  # no harvesting: same answer
    c.transact(R.R252_CANNOT_VRFY, "EXPN team@example.org")
    c = submission(office)
    c.transact(R.vrfy_ok(BOB), f"VRFY <{BOB}>")
    c.transact(R.R550_NO_SUCH_USER, "VRFY nobody@example.org")
    c.transact(R.R252_CANNOT_VRFY, "VRFY friend@remote.test")
    c.transact(R.expn_list([ALICE, BOB]), "EXPN team@example.org")
    c.transact(R.R550_NO_SUCH_USER, f"EXPN {BOB}")


# --- submission: 587 and 465 ------------------------------------------------------------------


def test_submission_needs_tls_then_auth(office):
    c = Wire.open(office, "submission")
    ext = c.ehlo()
    assert "STARTTLS" in ext and not any(e.startswith("AUTH") for e in ext)
    c.transact(R.R530_NEED_TLS, "MAIL FROM:<alice@example.org>")
    c.transact(R.R538_ENCRYPTION_REQUIRED, f"AUTH PLAIN {plain(ALICE)}")
    c.starttls(office)
    c.transact(R.R503_NEED_HELO, "MAIL FROM:<alice@example.org>")  # TLS starts the session over
    ext = c.ehlo()
    assert "STARTTLS" not in ext and "AUTH PLAIN LOGIN" in ext
    c.transact(R.R530_NEED_AUTH, "MAIL FROM:<alice@example.org>")
    c.transact(R.R535_AUTH_FAILED, f"AUTH PLAIN {plain(ALICE, 'wrong')}")
    c.transact(R.R235_AUTH_OK, f"AUTH PLAIN {plain(ALICE)}")
    c.transact(R.R503_ALREADY_AUTHENTICATED, f"AUTH PLAIN {plain(ALICE)}")
    assert "AUTH PLAIN LOGIN" not in c.ehlo()
    send(c, ALICE, ["friend@remote.test", BOB], b"Subject: out\r\n\r\nx\r\n")
    assert [r.recipient for r in office.store.list_queue()] == ["friend@remote.test"]
    assert b"with ESMTPSA id" in inbox(office, BOB)[0]


def test_auth_plain_with_challenge_and_login(office):
    c = Wire.open(office, "smtps")
    c.ehlo()
    c.transact(R.R334_EMPTY, "AUTH PLAIN")
    c.transact(R.R235_AUTH_OK, plain(ALICE))
    c = Wire.open(office, "smtps")
    c.ehlo()
    c.transact(R.R334_USERNAME, "AUTH LOGIN")
    c.transact(R.R334_PASSWORD, b64(ALICE))
    c.transact(R.R235_AUTH_OK, b64(PASSWORD))
    c = Wire.open(office, "smtps")
    c.ehlo()
    c.transact(R.R334_PASSWORD, f"AUTH LOGIN {b64(ALICE)}")
    c.transact(R.R235_AUTH_OK, b64(PASSWORD))


def test_auth_errors(office):
    c = Wire.open(office, "smtps")
    c.ehlo()
    c.transact(R.R504_AUTH_MECHANISM, "AUTH CRAM-MD5")
    c.transact(R.R334_EMPTY, "AUTH PLAIN")
    c.transact(R.R501_AUTH_CANCELLED, "*")
    c.transact(R.R501_BAD_BASE64, "AUTH PLAIN not-base64!")
    c.transact(R.R334_USERNAME, "AUTH LOGIN")
    c.transact(R.R501_AUTH_CANCELLED, "*")
    c.transact(R.R535_AUTH_FAILED, "AUTH PLAIN " + base64.b64encode(f"bob@example.org\0{ALICE}\0{PASSWORD}".encode()).decode())
    c.transact(R.R530_NEED_AUTH, f"MAIL FROM:<{ALICE}>")
    c.transact(R.R250_OK, "NOOP")  # the session is still alive


def test_auth_log_has_no_secret(office):
    c = Wire.open(office, "smtps")
    c.ehlo()
    c.transact(R.R235_AUTH_OK, f"AUTH PLAIN {plain(ALICE)}")
    listed_session(office, "smtps", last_command="AUTH PLAIN ***", user=ALICE)


def test_sender_must_be_own_address_or_alias(office):
    office.store.add_alias("sales@example.org", [ALICE, BOB])
    c = submission(office)
    c.transact(R.R553_NOT_YOUR_ADDRESS, f"MAIL FROM:<{BOB}>")
    c.transact(R.R553_NOT_YOUR_ADDRESS, "MAIL FROM:<boss@remote.test>")
    c.transact(R.R553_NOT_YOUR_ADDRESS, "MAIL FROM:<>")
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<Alice@EXAMPLE.org>")
    c.transact(R.R250_RESET, "RSET")
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<sales@example.org>")


@pytest.mark.in_process(reason="it reads the server's log records (caplog)")
def test_a_refused_sender_is_logged_as_an_address(office, caplog):
    caplog.set_level(logging.INFO, logger="kotakpos")
    c = submission(office)
    c.transact(R.R553_NOT_YOUR_ADDRESS, f"MAIL FROM:<{BOB}>")
    c.transact(R.R553_NOT_YOUR_ADDRESS, 'MAIL FROM:<"odd name"@remote.test>')
    assert f"{ALICE} may not send as {BOB}" in caplog.text
    assert f'{ALICE} may not send as "odd name"@remote.test' in caplog.text
    assert "Path(" not in caplog.text


@pytest.mark.in_process(reason="it reads the server's log records (caplog)")
def test_a_failed_login_logs_why_and_tells_the_client_nothing(office, caplog):
    caplog.set_level(logging.INFO, logger="kotakpos.auth")
    c = Wire.open(office, "smtps")
    c.ehlo()
    c.transact(R.R535_AUTH_FAILED, f"AUTH PLAIN {plain('nobody@example.org')}")
    c.transact(R.R535_AUTH_FAILED, f"AUTH PLAIN {plain(ALICE, 'not the password')}")
    failures = [r.getMessage() for r in caplog.records if r.getMessage().startswith("auth failed")]
    assert len(failures) == 2
    assert "user=nobody@example.org listener=smtps: unknown user, delay=" in failures[0]
    assert f"user={ALICE} listener=smtps: wrong password, delay=" in failures[1]
    assert "not the password" not in caplog.text


def test_submission_adds_message_id_and_date_when_missing(office):
    c = submission(office, listener="smtps")
    send(c, ALICE, [BOB], b"Subject: bare\r\n\r\nbody\r\n")
    send(c, ALICE, [BOB], b"Subject: full\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n")
    first, second = inbox(office, BOB)
    head = first.split(b"\r\n\r\n")[0]
    assert b"\r\nDate: " in head and b"\r\nMessage-ID: <" in head and b"@mail.example.org>" in head
    head = second.split(b"\r\n\r\n")[0]
    assert head.count(b"Message-ID:") == 1 and head.count(b"\r\nDate:") == 1 and b"<x@y>" in head
    assert body_of(second) == b"body\r\n"


def test_port_25_adds_no_message_id(office):
    c = Wire.open(office)
    c.ehlo()
    send(c, "someone@remote.test", [ALICE], b"Subject: bare\r\n\r\nbody\r\n")
    assert b"Message-ID" not in inbox(office, ALICE)[0]


def test_dsn_parameters_kept_for_the_queue(office):
    c = submission(office)
    c.transact(R.R250_SENDER_OK, f"MAIL FROM:<{ALICE}> RET=HDRS ENVID=abc+2B1")
    c.transact(R.R250_RCPT_OK, "RCPT TO:<friend@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;friend+40remote.test")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(b"Subject: dsn\r\n\r\nx\r\n.\r\n")
    c.expect("250 *")
    [row] = office.store.list_queue()
    dsn = json.loads(row.dsn)
    assert dsn["ret"] == "HDRS" and dsn["envid"] == "abc+1"
    assert dsn["notify"] == ["FAILURE", "SUCCESS"] and dsn["orcpt"] == ["rfc822", "friend@remote.test"]


def test_plaintext_auth_when_the_config_allows_it(make_server):
    server = make_server(auth={"allow_plaintext": True})
    server.add_user(ALICE)
    c = Wire.open(server, "submission")
    assert "AUTH PLAIN LOGIN" in c.ehlo()
    c.transact(R.R530_NEED_AUTH, f"MAIL FROM:<{ALICE}>")
    c.transact(R.R235_AUTH_OK, f"AUTH PLAIN {plain(ALICE)}")
    c.transact(R.R250_SENDER_OK, f"MAIL FROM:<{ALICE}>")


def test_blocked_address_gets_temporary_failure(office):
    office.admin.block("127.0.0.1", 60)
    c = Wire.open(office, "smtps")
    c.ehlo()
    c.transact(R.R454_AUTH_TEMPORARY, f"AUTH PLAIN {plain(ALICE)}")
    office.admin.unblock("127.0.0.1")
    c.transact(R.R235_AUTH_OK, f"AUTH PLAIN {plain(ALICE)}")


def test_malformed_auth_line_is_not_recorded(office):
    c = Wire.open(office, "smtps")
    c.ehlo()
    c.transact(R.R501_AUTH_SYNTAX, f"AUTH PLAIN {plain(ALICE)} extra")
    info = listed_session(office, "smtps", last_command=lambda command: command.startswith("AUTH"))
    assert PASSWORD not in info["last_command"] and plain(ALICE) not in info["last_command"]


def test_postmaster_may_be_an_address_elsewhere(make_server):
    server = relay_test_server(make_server, server={"admin_address": "boss@remote.test"})
    server.add_user(ALICE)
    c = Wire.open(server)
    c.ehlo()
    send(c, "someone@remote.test", ["postmaster@example.org"], b"Subject: pm\r\n\r\nx\r\n")
    assert [r.recipient for r in server.store.list_queue()] == ["boss@remote.test"]
    assert inbox(server, ALICE) == []
