"""App passwords made on the account page work in every mail protocol (stdlib clients)."""

import imaplib
import poplib
import smtplib

import pytest

from appliance.auth.app_passwords import digest, new_app_password
from tests.conftest import PASSWORD

ALICE = "alice@example.org"


@pytest.fixture
def office(make_server):
    srv = make_server(auth={"require_app_passwords": True, "fail_delay_max": 0.2})
    user = srv.add_user(ALICE)
    secret = new_app_password()
    srv.store.add_app_password(user.id, "Rina's phone", digest(secret))
    return srv, secret


def imap_ok(srv, password):
    with imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=srv.tls_context(), timeout=10) as m:
        try:
            return m.login(ALICE, password)[0] == "OK"
        except imaplib.IMAP4.error:
            return False


def pop3_ok(srv, password):
    client = poplib.POP3_SSL("127.0.0.1", srv.port("pop3s"), context=srv.tls_context(), timeout=10)
    try:
        client.user(ALICE)
        client.pass_(password)
        return True
    except poplib.error_proto:
        return False
    finally:
        client.close()


def smtp_ok(srv, password):
    with smtplib.SMTP_SSL(*srv.address("smtps"), context=srv.tls_context(), timeout=10) as smtp:
        try:
            smtp.login(ALICE, password)
            return True
        except smtplib.SMTPAuthenticationError:
            return False


@pytest.mark.parametrize("login", [imap_ok, pop3_ok, smtp_ok], ids=["imap", "pop3", "smtp"])
def test_the_app_password_logs_in_and_the_main_one_does_not_when_required(office, login):
    srv, secret = office
    assert login(srv, secret)
    assert not login(srv, PASSWORD)
