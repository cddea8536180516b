"""Infected mail through SMTP: refused at DATA and counted, or quarantined and released."""

import smtplib

import pytest

from tests.mda_helpers import EICAR, folder, plain, send, wait_for, wire, with_attachment, zipped

ALICE = "alice@example.org"


@pytest.fixture
def alice(server):
    server.add_user(ALICE)
    return server


def refused(server, message) -> smtplib.SMTPDataError:
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(server, message)
    return e.value


@pytest.mark.parametrize("message", [
    plain(body=EICAR.decode() + "\n"),
    with_attachment("eicar.com", EICAR),
    with_attachment("archive.zip", zipped({"a/eicar.txt": EICAR})),
    with_attachment("setup.exe", b"MZ\x90\x00 not really a program"),
], ids=["plain-body", "attachment", "zip", "exe"])
def test_infected_mail_is_refused_at_data_and_counted(alice, message):
    e = refused(alice, message)
    assert e.smtp_code == 554 and e.smtp_error.startswith(b"5.7.0")
    assert folder(alice, ALICE) == []
    wait_for(lambda: {k: alice.stats().get(k) for k in ("mda.reject", "mda.virus")} == {"mda.reject": 1, "mda.virus": 1},
             what="the virus counted")


def test_clean_mail_still_arrives_and_the_session_goes_on(alice):
    with smtplib.SMTP("127.0.0.1", alice.port("smtp"), timeout=30) as s:
        with pytest.raises(smtplib.SMTPDataError):
            s.sendmail("bob@remote.test", ALICE, wire(plain(body=EICAR.decode())))
        s.sendmail("bob@remote.test", ALICE, wire(plain(body="hello, clean")))
    [raw] = folder(alice, ALICE)
    assert b"hello, clean" in raw and raw.startswith(b"Return-Path: <bob@remote.test>")


def test_quarantined_then_released(make_server):
    server = make_server(mda={"virus_action": "quarantine"})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    send(server, with_attachment("eicar.com", EICAR, subject="held back"))
    assert folder(server, ALICE) == []
    api = server.admin
    [held] = api.quarantine_list()
    assert held["recipients"] == [ALICE] and "EICAR" in held["reason"] and held["subject"] == "held back"
    assert "held back" in api.quarantine_show(held["id"])["message"]
    assert api.quarantine_release(held["id"]) == [ALICE]
    assert api.quarantine_list() == []
    [raw] = folder(server, ALICE)
    assert b"Subject: held back" in raw
    wait_for(lambda: server.stats().get("mda.quarantine") == 1, what="the quarantine counted")


def test_quarantine_delete(make_server):
    server = make_server(mda={"virus_action": "quarantine"})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    send(server, plain(body=EICAR.decode()))
    api = server.admin
    [held] = api.quarantine_list()
    assert api.quarantine_delete(held["id"]) is True
    assert api.quarantine_list() == [] and server.store.counts()["quarantine"] == 0
