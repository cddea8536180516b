"""A bounce to a forwarded message's SRS address finds its way back to the original sender."""

import smtplib

import pytest

BOUNCE = b"From: MAILER-DAEMON@far.test\r\nSubject: Undelivered\r\n\r\nsorry\r\n"


@pytest.mark.in_process(reason="it makes an SRS address with the server's own secret")
def test_a_bounce_to_our_srs_address_is_relayed_to_the_original_sender(server):
    srs_address = server.ctx.srs.forward("carol@remote.test")
    assert srs_address.endswith("@" + server.ctx.hostname)
    with smtplib.SMTP(*server.address("smtp")) as client:
        client.sendmail("", [srs_address], BOUNCE)  # port 25, unauthenticated, as a remote MTA sends it
    assert [row.recipient for row in server.store.list_queue()] == ["carol@remote.test"]


@pytest.mark.in_process(reason="it makes an SRS address with the server's own secret")
def test_a_forged_srs_address_is_refused(server):
    genuine = server.ctx.srs.forward("carol@remote.test")
    forged = genuine.replace("SRS0=", "SRS0=x", 1)
    with smtplib.SMTP(*server.address("smtp")) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("", [forged], BOUNCE)
    code, _ = refused.value.recipients[forged]
    assert code >= 550
    assert server.store.list_queue() == []
