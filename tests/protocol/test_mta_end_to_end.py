"""The whole outbound path: submission → queue → remote server, and a restart mid-run."""

from __future__ import annotations

import smtplib

import pytest

from tests.conftest import PASSWORD
from tests.protocol.mta_helpers import FAST_RETRY, inbox, message, queue, wait_queue_empty, wait_until
from tests.protocol.mta_sink import Sink

ALICE = "alice@example.org"


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def submit(server, sender: str, recipients: list[str], raw: bytes, **mail_options) -> None:
    with smtplib.SMTP(*server.address("submission"), timeout=10) as client:
        client.starttls(context=server.tls_context())
        client.login(sender, PASSWORD)
        client.sendmail(sender, recipients, raw, **mail_options)


def test_mail_submitted_by_a_user_reaches_the_remote_server(make_server, sink):
    server = make_server(mta={"routes": {"remote.test": sink.route}, "retry_intervals": FAST_RETRY})
    server.admin.add_domain("example.org")
    server.add_user(ALICE)
    submit(server, ALICE, ["bob@remote.test"], message(ALICE, "bob@remote.test", subject="via submission"))
    [got] = sink.wait_for(1)
    wait_queue_empty(server)
    assert got.sender == ALICE and got.recipients == ["bob@remote.test"]
    assert b"Subject: via submission" in got.data
    assert got.data.startswith(b"DKIM-Signature:")
    assert b"Return-Path" not in got.data


def test_second_kotakpos_receives_with_pipelining_and_dsn_passed_on(make_server):
    receiver = make_server()
    receiver.add_user("bob@example.net")
    sender = make_server(mta={"routes": {"example.net": f"127.0.0.1:{receiver.port('smtp')}"},
                              "retry_intervals": FAST_RETRY})
    sender.add_user(ALICE)
    submit(sender, ALICE, ["bob@example.net"], message(ALICE, "bob@example.net", subject="server to server"),
           rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    [got] = wait_until(lambda: inbox(receiver, "bob@example.net"), what="delivery at the second server")
    assert got["Subject"] == "server to server"
    assert got["Return-Path"] == f"<{ALICE}>"
    wait_queue_empty(sender)
    # The next hop speaks DSN, so the success report is its business, not ours (RFC 3461 §5.2).
    assert inbox(sender, ALICE) == []


def test_unknown_user_at_the_second_kotakpos_bounces_to_the_sender(make_server):
    receiver = make_server()
    receiver.add_user("bob@example.net")
    sender = make_server(mta={"routes": {"example.net": f"127.0.0.1:{receiver.port('smtp')}"},
                              "retry_intervals": FAST_RETRY})
    sender.add_user(ALICE)
    queue(sender, ALICE, ["nobody@example.net"])
    [dsn] = wait_until(lambda: inbox(sender, ALICE), what="a DSN")
    assert "5.1.1" in dsn.as_string()


def test_restart_in_the_middle_of_a_queue_run_loses_nothing(make_server, tmp_path):
    slow = Sink(stall=1.0)
    try:
        folder = tmp_path / "restarting"
        mta = {"routes": {"remote.test": slow.route}, "retry_intervals": FAST_RETRY}
        first = make_server(data_dir=folder, mta=mta)
        first.add_user(ALICE)
        subjects = {f"letter {i}" for i in range(6)}
        for subject in sorted(subjects):
            queue(first, ALICE, ["bob@remote.test"], message(ALICE, "bob@remote.test", subject=subject))
        slow.wait_for(2)
        first.stop()                       # mid-run: some delivered, one in DATA, the rest claimed
        left = len(subjects) - len(slow.messages)
        assert left > 0, "the run had finished before the stop"
        slow.stall = 0
        second = make_server(data_dir=folder, mta=mta)
        wait_queue_empty(second)
        arrived = [m.data.split(b"Subject: ")[1].split(b"\r\n")[0].decode() for m in slow.messages]
        assert set(arrived) == subjects
        # At-least-once: only the message whose reply the stop cut off may come twice.
        assert len(arrived) <= len(subjects) + 1
        assert inbox(second, ALICE) == []
    finally:
        slow.close()
