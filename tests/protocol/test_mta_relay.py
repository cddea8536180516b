"""Outbound relay through [mta.routes] to an aiosmtpd sink: delivery, retries, bounces."""

from __future__ import annotations

import ssl

import pytest

from tests.protocol.mta_helpers import (FAST_RETRY, delivery_status, inbox, message, queue, wait_queue_empty,
                                        wait_until)
from tests.protocol.mta_sink import Sink

SENDER = "alice@example.org"


@pytest.fixture
def sink(_certificate):
    """Sinks that offer STARTTLS with the test certificate."""
    made = []
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*_certificate)

    def start(**kw) -> Sink:
        made.append(Sink(tls_context=tls, **kw))
        return made[-1]

    yield start
    for s in made:
        s.close()


def relay_server(make_server, sink: Sink, **mta):
    server = make_server(mta={"routes": {"remote.test": sink.route}, "retry_intervals": FAST_RETRY, **mta})
    server.add_user(SENDER)
    return server


def test_queued_message_reaches_the_remote_server_once(make_server, sink):
    remote = sink()
    server = relay_server(make_server, remote)
    raw = message(SENDER, "bob@remote.test", subject="quarterly figures")
    queue(server, SENDER, ["bob@remote.test"], raw)
    got = remote.wait_for(1)
    wait_queue_empty(server)
    assert got[0].sender == SENDER and got[0].recipients == ["bob@remote.test"]
    assert b"Subject: quarterly figures" in got[0].data
    assert got[0].tls, "STARTTLS was offered, so the relay must have used it"
    assert len(remote.messages) == 1


def test_recipients_of_one_message_share_one_transaction(make_server, sink):
    remote = sink()
    server = relay_server(make_server, remote)
    queue(server, SENDER, ["a@remote.test", "b@remote.test", "c@remote.test"])
    got = remote.wait_for(1)
    wait_queue_empty(server)
    assert sorted(got[0].recipients) == ["a@remote.test", "b@remote.test", "c@remote.test"]
    assert remote.data_attempts == 1


def test_two_temporary_failures_then_success_deliver_exactly_one_copy(make_server, sink):
    remote = sink(data_replies=["451 4.3.0 try again later", "451 4.3.0 still busy"])
    server = relay_server(make_server, remote)
    queue(server, SENDER, ["bob@remote.test"])
    remote.wait_for(1)
    wait_queue_empty(server)
    assert remote.data_attempts == 3
    assert len(remote.messages) == 1
    assert inbox(server, SENDER) == [], "a delivered message must not bounce"


def test_deferred_entry_shows_attempts_and_the_remote_reply(make_server, sink):
    remote = sink(data_replies=["452 4.2.2 mailbox full"])
    server = make_server(mta={"routes": {"remote.test": remote.route}, "retry_intervals": ["1h"]})
    server.add_user(SENDER)
    [queue_id] = queue(server, SENDER, ["bob@remote.test"])
    entry = wait_until(lambda: (e := server.store.queue_entry(queue_id)).attempts == 1 and e, what="one attempt")
    assert entry.state == "queued"
    assert "452 4.2.2 mailbox full" in entry.last_error
    assert entry.next_attempt > entry.created + 3000


def test_permanent_refusal_bounces_once_into_the_senders_inbox(make_server, sink):
    remote = sink(rcpt_replies={"nobody@remote.test": "550 5.1.1 no such user here"})
    server = relay_server(make_server, remote)
    raw = message(SENDER, "nobody@remote.test", subject="lost letter")
    queue(server, SENDER, ["nobody@remote.test"], raw)
    bounces = wait_until(lambda: inbox(server, SENDER), what="a DSN")
    wait_queue_empty(server)
    assert len(inbox(server, SENDER)) == 1
    dsn = bounces[0]
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["From"].addresses[0].username == "MAILER-DAEMON"
    [block] = delivery_status(dsn)
    assert block["Action"] == "failed"
    assert block["Status"] == "5.1.1"
    assert block["Final-Recipient"] == "rfc822; nobody@remote.test"
    assert "550 5.1.1 no such user here" in block["Diagnostic-Code"]
    returned = [p for p in dsn.walk() if p.get_content_type() == "message/rfc822"]
    assert returned and "lost letter" in returned[0].as_string()
    assert remote.messages == []


def test_one_refused_recipient_bounces_and_the_others_are_delivered(make_server, sink):
    remote = sink(rcpt_replies={"gone@remote.test": "550 5.1.1 gone"})
    server = relay_server(make_server, remote)
    queue(server, SENDER, ["here@remote.test", "gone@remote.test"])
    got = remote.wait_for(1)
    assert got[0].recipients == ["here@remote.test"]
    [dsn] = wait_until(lambda: inbox(server, SENDER), what="a DSN")
    assert [b["Final-Recipient"] for b in delivery_status(dsn)] == ["rfc822; gone@remote.test"]


def test_ret_hdrs_returns_only_the_headers(make_server, sink):
    remote = sink(data_replies=["554 5.6.0 content refused"])
    server = relay_server(make_server, remote)
    queue(server, SENDER, ["bob@remote.test"], message(SENDER, "bob@remote.test", body="SECRET BODY\r\n"),
          dsn={"ret": "HDRS"})
    [dsn] = wait_until(lambda: inbox(server, SENDER), what="a DSN")
    [headers] = [p for p in dsn.walk() if p.get_content_type() == "text/rfc822-headers"]
    assert "Subject: hello" in headers.get_content()
    assert b"SECRET BODY" not in dsn.as_bytes()
    assert delivery_status(dsn)[0]["Status"] == "5.6.0"


def test_notify_never_suppresses_the_bounce(make_server, sink):
    remote = sink(rcpt_replies={"nobody@remote.test": "550 5.1.1 no"})
    server = relay_server(make_server, remote)
    queue(server, SENDER, ["nobody@remote.test"], dsn={"notify": ["NEVER"]})
    wait_queue_empty(server)
    assert inbox(server, SENDER) == []


def test_a_bounce_never_bounces(make_server, sink):
    remote = sink(rcpt_replies={"nobody@remote.test": "550 5.1.1 no"})
    server = relay_server(make_server, remote)
    queue(server, "", ["nobody@remote.test"])
    wait_queue_empty(server)
    assert inbox(server, SENDER) == []
    assert server.store.list_queue() == []


def test_a_remote_sender_gets_its_bounce_through_the_queue_with_a_null_sender(make_server, sink):
    remote = sink(rcpt_replies={"nobody@remote.test": "550 5.1.1 no"})
    server = relay_server(make_server, remote)
    queue(server, "carol@remote.test", ["nobody@remote.test"])
    got = remote.wait_for(1)
    assert got[0].sender == "<>" and got[0].recipients == ["carol@remote.test"]  # aiosmtpd's null sender
    assert b"multipart/report" in got[0].data


def test_mail_loop_bounces_without_an_attempt(make_server, sink):
    remote = sink()
    server = relay_server(make_server, remote)
    hops = b"".join(b"Received: from hop%d by hop%d; Fri, 27 Nov 2026 10:00:00 +0000\r\n" % (i, i + 1)
                    for i in range(31))
    queue(server, SENDER, ["bob@remote.test"], hops + message(SENDER, "bob@remote.test"))
    [dsn] = wait_until(lambda: inbox(server, SENDER), what="a DSN")
    assert delivery_status(dsn)[0]["Status"] == "5.4.6"
    assert remote.data_attempts == 0


def test_expired_message_bounces_with_4_4_7(make_server, sink):
    remote = sink(data_replies=["451 4.3.0 busy"] * 50)
    server = relay_server(make_server, remote, max_queue_time=0.5)
    queue(server, SENDER, ["bob@remote.test"])
    [dsn] = wait_until(lambda: inbox(server, SENDER), what="a DSN")
    [block] = delivery_status(dsn)
    assert block["Action"] == "failed" and block["Status"] == "4.4.7"
    wait_queue_empty(server)


def test_delay_warning_is_sent_once_and_delivery_continues(make_server, sink):
    remote = sink(data_replies=["451 4.3.0 busy"] * 6)
    server = relay_server(make_server, remote, delay_warning=0.3)
    queue(server, SENDER, ["bob@remote.test"])
    remote.wait_for(1)
    wait_queue_empty(server)
    [warning] = inbox(server, SENDER)
    [block] = delivery_status(warning)
    assert block["Action"] == "delayed" and block["Status"] == "4.3.0"
    assert "Will-Retry-Until" in block


def test_success_dsn_when_asked_and_the_next_hop_has_no_dsn(make_server, sink):
    remote = sink()   # aiosmtpd does not offer DSN
    server = relay_server(make_server, remote)
    queue(server, SENDER, ["bob@remote.test"], dsn={"notify": ["SUCCESS"]})
    remote.wait_for(1)
    [report] = wait_until(lambda: inbox(server, SENDER), what="a success DSN")
    [block] = delivery_status(report)
    assert block["Action"] == "relayed" and block["Status"].startswith("2.")


def test_return_path_is_not_relayed(make_server, sink):
    remote = sink()
    server = relay_server(make_server, remote)
    queue(server, SENDER, ["bob@remote.test"], b"Return-Path: <alice@example.org>\r\n" + message(SENDER, "b@remote.test"))
    got = remote.wait_for(1)
    assert b"Return-Path" not in got[0].data


def test_unreachable_destination_is_deferred_not_bounced(make_server, sink):
    remote = sink()
    dead_port = remote.port
    remote.close()
    server = make_server(mta={"routes": {"remote.test": f"127.0.0.1:{dead_port}"}, "retry_intervals": ["1h"]})
    server.add_user(SENDER)
    [queue_id] = queue(server, SENDER, ["bob@remote.test"])
    entry = wait_until(lambda: (e := server.store.queue_entry(queue_id)).attempts == 1 and e, what="one attempt")
    assert entry.state == "queued" and entry.last_error
    assert inbox(server, SENDER) == []


def test_a_server_that_stalls_after_the_data_is_timed_out_and_retried(make_server, sink):
    remote = sink(stall=3.0)
    server = make_server(mta={"routes": {"remote.test": remote.route}, "retry_intervals": ["1h"],
                              "data_end_timeout": 0.5})
    server.add_user(SENDER)
    [queue_id] = queue(server, SENDER, ["bob@remote.test"])
    entry = wait_until(lambda: (e := server.store.queue_entry(queue_id)).attempts == 1 and e, timeout=5,
                       what="the attempt to time out")
    assert "timed out" in entry.last_error and entry.state == "queued"


def test_connections_per_destination_bound_the_parallel_sessions(make_server, sink):
    remote = sink(stall=0.3)
    server = relay_server(make_server, remote, connections_per_destination=2, messages_per_connection=1)
    for i in range(6):
        queue(server, SENDER, ["bob@remote.test"], message(SENDER, "bob@remote.test", subject=f"n{i}"))
    remote.wait_for(6)
    wait_queue_empty(server)
    assert remote.most_at_once == 2


def test_non_ascii_address_needs_smtputf8_at_the_next_hop(make_server, sink):
    remote = sink()  # aiosmtpd offers SMTPUTF8
    server = relay_server(make_server, remote)
    queue(server, SENDER, ["jürgen@remote.test"])
    [got] = remote.wait_for(1)
    assert got.recipients == ["jürgen@remote.test"] and "SMTPUTF8" in got.mail_options
