"""Real SMTP clients against the server: Python's smtplib and swaks (Debian)."""

import shutil
import smtplib
import subprocess
from email.message import EmailMessage

import pytest

from tests.conftest import PASSWORD
from tests.protocol.smtp_wire import body_of, inbox, relay_test_server

ALICE = "alice@example.org"
BOB = "bob@example.org"
CAROL = "carol@example.org"


@pytest.fixture
def office(make_server):
    server = relay_test_server(make_server)
    for user in (ALICE, BOB, CAROL):
        server.add_user(user)
    return server


# --- smtplib ----------------------------------------------------------------------------------


def test_smtplib_sendmail_on_25(office):
    with smtplib.SMTP(*office.address("smtp"), local_hostname="client.test") as smtp:
        refused = smtp.sendmail("someone@remote.test", [ALICE, "nobody@example.org"],
                                b"Subject: from smtplib\r\n\r\n.leading dot\r\n")
    assert list(refused) == ["nobody@example.org"] and refused["nobody@example.org"][0] == 550
    assert body_of(inbox(office, ALICE)[0]) == b".leading dot\r\n"


def test_smtplib_refuses_relay_on_25(office):
    with smtplib.SMTP(*office.address("smtp")) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.sendmail("someone@remote.test", ["victim@remote.test"], b"Subject: relay?\r\n\r\nx\r\n")
    assert refused.value.recipients["victim@remote.test"] == (554, b"5.7.1 Relay access denied")


def test_smtplib_a_25_megabyte_attachment_passes_with_the_default_limit(make_server):
    server = relay_test_server(make_server, mda={"filters": []})  # the limit is the point, not the filters
    server.add_user(ALICE)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "someone@remote.test", ALICE, "the big report"
    msg.set_content("Attached.\n")
    msg.add_attachment(bytes(range(256)) * (25 * 1024 * 1024 // 256), maintype="application",
                       subtype="octet-stream", filename="report.bin")
    with smtplib.SMTP(*server.address("smtp")) as smtp:
        smtp.ehlo()
        assert smtp.esmtp_features["size"] == str(36 * 1024 * 1024)
        assert smtp.send_message(msg) == {}  # smtplib declares SIZE= (about 34 MB) in MAIL
    assert len(inbox(server, ALICE)[0]) > 34_000_000


def test_smtplib_too_big_is_refused_with_the_limit_in_megabytes(office):
    with smtplib.SMTP(*office.address("smtp")) as smtp:
        smtp.ehlo()
        assert smtp.mail("someone@remote.test", [f"SIZE={40 * 1000 * 1000}"]) == \
            (552, b"5.3.4 Message too big: the limit is 36 MB")


def test_smtplib_starttls_login_send_message(office):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ALICE, f"{BOB}, friend@remote.test", "submission"
    msg.set_content("Hello Bob.\n")
    with smtplib.SMTP(*office.address("submission")) as smtp:
        smtp.starttls(context=office.tls_context())
        smtp.login(ALICE, PASSWORD)
        assert smtp.send_message(msg) == {}
    raw = inbox(office, BOB)[0]
    assert b"Hello Bob." in raw and b"Message-ID: <" in raw and b"with ESMTPSA" in raw
    assert [r.recipient for r in office.store.list_queue()] == ["friend@remote.test"]


def test_smtplib_login_fails_with_wrong_password(office):
    with smtplib.SMTP(*office.address("submission")) as smtp:
        smtp.starttls(context=office.tls_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            smtp.login(ALICE, "wrong")
    assert failed.value.smtp_code == 535


def test_smtplib_smtps_auth_login(office):
    with smtplib.SMTP_SSL(*office.address("smtps"), context=office.tls_context()) as smtp:
        smtp.ehlo()
        smtp.esmtp_features["auth"] = "LOGIN"  # make smtplib pick LOGIN
        smtp.login(ALICE, PASSWORD)
        smtp.sendmail(ALICE, [CAROL], b"Subject: 465\r\n\r\nimplicit TLS\r\n")
    assert b"implicit TLS" in inbox(office, CAROL)[0]


def test_smtplib_send_message_smtputf8(office):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "jörg@bücher.test", ALICE, "Grüße"
    msg.set_content("Ünïcödé body\n")
    with smtplib.SMTP(*office.address("smtp")) as smtp:
        smtp.send_message(msg)  # a non-ASCII address: smtplib uses SMTPUTF8 by itself
    raw = inbox(office, ALICE)[0]
    assert raw.startswith("Return-Path: <jörg@bücher.test>".encode()) and b"with UTF8SMTP id" in raw
    assert "Subject: Grüße".encode() in raw


def test_smtplib_without_tls_cannot_login(office):
    with smtplib.SMTP(*office.address("submission")) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth")
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail(ALICE, [BOB], b"Subject: x\r\n\r\nx\r\n")
    assert refused.value.smtp_code == 530


# --- swaks ------------------------------------------------------------------------------------

needs_swaks = pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed (.ci/run installs it)")


def swaks(server, listener: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(server.port(listener)), "--helo", "swaks.test",
           "--timeout", "30", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@needs_swaks
def test_swaks_plain_on_25_several_recipients(office):
    done = swaks(office, "smtp", "--from", "someone@remote.test", "--to", f"{ALICE},{BOB},{CAROL}",
                 "--header", "Subject: swaks plain")
    assert done.returncode == 0, done.stdout
    for user in (ALICE, BOB, CAROL):
        assert b"Subject: swaks plain" in inbox(office, user)[0]


@needs_swaks
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_starttls_auth_on_587(office, mechanism):
    done = swaks(office, "submission", "--tls", "--auth", mechanism, "--auth-user", ALICE,
                 "--auth-password", PASSWORD, "--from", ALICE, "--to", BOB, "--header", f"Subject: {mechanism}")
    assert done.returncode == 0, done.stdout
    assert f"Subject: {mechanism}".encode() in inbox(office, BOB)[0]
    assert "235 2.7.0 Authentication successful" in done.stdout


@needs_swaks
def test_swaks_implicit_tls_on_465(office):
    done = swaks(office, "smtps", "--tls-on-connect", "--auth", "PLAIN", "--auth-user", ALICE,
                 "--auth-password", PASSWORD, "--from", ALICE, "--to", "friend@remote.test")
    assert done.returncode == 0, done.stdout
    assert [r.recipient for r in office.store.list_queue()] == ["friend@remote.test"]


@needs_swaks
def test_swaks_pipeline(office):
    done = swaks(office, "smtp", "--pipeline", "--from", "someone@remote.test",
                 "--to", f"{ALICE},nobody@example.org,{BOB}")
    # one recipient refused: swaks reports it but the message goes to the others
    assert "550 5.1.1" in done.stdout
    assert "PIPELINING" in done.stdout
    assert len(inbox(office, ALICE)) == 1 and len(inbox(office, BOB)) == 1


@needs_swaks
def test_swaks_ten_megabyte_message(office, tmp_path):
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.............\r\n"
    content = b"Subject: big\r\n\r\n" + line * (10 * 1024 * 1024 // len(line))
    path = tmp_path / "big.eml"
    path.write_bytes(content)
    done = swaks(office, "smtp", "--from", "someone@remote.test", "--to", ALICE, "--data", f"@{path}",
                 "--suppress-data", timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    raw = inbox(office, ALICE)[0]
    # swaks ends the data with its own CRLF before the dot
    assert raw.endswith(content[len(b"Subject: big\r\n\r\n"):] + b"\r\n") and len(raw) > 10_000_000


@needs_swaks
def test_swaks_relay_refused(office):
    done = swaks(office, "smtp", "--from", "someone@remote.test", "--to", "victim@remote.test")
    assert done.returncode != 0 and "554 5.7.1" in done.stdout
