"""DKIM signatures verified at the receiver, and a smarthost that requires STARTTLS and AUTH."""

from __future__ import annotations

import ssl

import dkim as dkimpy
import pytest

from appliance.mta import dkim
from tests.protocol.mta_helpers import FAST_RETRY, message, queue, wait_until
from tests.protocol.mta_sink import Sink

SENDER = "alice@example.org"


@pytest.fixture
def tls_for_sink(_certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*_certificate)
    return context


@pytest.fixture
def sinks():
    made = []
    yield made
    for s in made:
        s.close()


def published(store, domain):
    """A dnsfunc for dkimpy that answers with the records ``kotakpos dns`` prints."""
    records = {name + ".": value for name, value in dkim.public_records(store, domain)}

    def dnsfunc(name, timeout=5):
        return records.get(name.decode()).encode() if name.decode() in records else None
    return dnsfunc


def signature_domains(data: bytes, dnsfunc) -> list[tuple[bytes, bool]]:
    """(algorithm, verified) of every DKIM-Signature header, in order."""
    checker = dkimpy.DKIM(data)
    count = sum(1 for line in data.split(b"\r\n\r\n")[0].split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))
    results = []
    for i in range(count):
        try:
            ok = checker.verify(idx=i, dnsfunc=dnsfunc)
        except dkimpy.ValidationError:
            ok = False
        results.append((checker.signature_fields[b"a"], ok))
    return results


def test_mail_from_a_local_domain_carries_rsa_and_ed25519_signatures_that_verify(make_server, sinks, tls_for_sink):
    remote = Sink(tls_context=tls_for_sink)
    sinks.append(remote)
    server = make_server(mta={"routes": {"remote.test": remote.route}, "retry_intervals": FAST_RETRY})
    server.admin.add_domain("example.org")   # as `kotakpos domain add` does: makes the keys
    server.add_user(SENDER)
    queue(server, SENDER, ["bob@remote.test"], message(SENDER, "bob@remote.test", subject="signed"))
    [got] = remote.wait_for(1)
    assert got.data.startswith(b"DKIM-Signature:")
    results = signature_domains(got.data, published(server.store, "example.org"))
    assert sorted(results) == [(b"ed25519-sha256", True), (b"rsa-sha256", True)]


def test_a_changed_message_fails_verification(make_server, sinks, tls_for_sink):
    remote = Sink(tls_context=tls_for_sink)
    sinks.append(remote)
    server = make_server(mta={"routes": {"remote.test": remote.route}, "retry_intervals": FAST_RETRY})
    server.admin.add_domain("example.org")
    server.add_user(SENDER)
    queue(server, SENDER, ["bob@remote.test"], message(SENDER, "bob@remote.test", body="Pay 10 EUR.\r\n"))
    [got] = remote.wait_for(1)
    forged = got.data.replace(b"Pay 10 EUR.", b"Pay 99 EUR.")
    assert [ok for _, ok in signature_domains(forged, published(server.store, "example.org"))] == [False, False]


def test_forwarded_mail_from_outside_is_not_signed_and_gets_an_srs_sender(make_server, sinks, tls_for_sink):
    remote = Sink(tls_context=tls_for_sink)
    sinks.append(remote)
    server = make_server(mta={"routes": {"remote.test": remote.route}, "retry_intervals": FAST_RETRY,
                              "srs_domain": "example.org"})
    server.admin.add_domain("example.org")
    queue(server, "carol@elsewhere.test", ["phone@remote.test"], message("carol@elsewhere.test", "fwd@example.org"))
    [got] = remote.wait_for(1)
    assert not got.data.startswith(b"DKIM-Signature:")
    assert got.sender.startswith("SRS0=") and got.sender.endswith("=elsewhere.test=carol@example.org")
    from appliance.mta import srs
    assert srs.reverse(got.sender, srs.load_secret(server.store)) == "carol@elsewhere.test"


def test_smarthost_with_starttls_and_auth(make_server, sinks, tls_for_sink, _certificate):
    smarthost = Sink(tls_context=tls_for_sink, require_tls=True, login=("office", "s3cret"))
    sinks.append(smarthost)
    server = make_server(mta={"smarthost": smarthost.route, "smarthost_user": "office",
                              "smarthost_password": "s3cret", "tls_cafile": str(_certificate[0]),
                              "retry_intervals": FAST_RETRY})
    server.add_user(SENDER)
    queue(server, SENDER, ["someone@anywhere.test", "other@elsewhere.test"])
    [got] = smarthost.wait_for(1)   # one message, both recipients: the smarthost is one destination
    assert got.tls and got.login == "office"
    assert sorted(got.recipients) == ["other@elsewhere.test", "someone@anywhere.test"]


def test_smarthost_with_a_wrong_password_keeps_the_mail_queued(make_server, sinks, tls_for_sink, _certificate):
    smarthost = Sink(tls_context=tls_for_sink, require_tls=True, login=("office", "s3cret"))
    sinks.append(smarthost)
    server = make_server(mta={"smarthost": smarthost.route, "smarthost_user": "office",
                              "smarthost_password": "wrong", "tls_cafile": str(_certificate[0]),
                              "retry_intervals": ["1h"]})
    server.add_user(SENDER)
    [queue_id] = queue(server, SENDER, ["someone@anywhere.test"])
    entry = wait_until(lambda: (e := server.store.queue_entry(queue_id)).attempts == 1 and e, what="one attempt")
    assert "refused our login" in entry.last_error
    assert smarthost.messages == []


def test_smarthost_certificate_must_verify(make_server, sinks, tls_for_sink):
    smarthost = Sink(tls_context=tls_for_sink, require_tls=True, login=("office", "s3cret"))
    sinks.append(smarthost)
    # No tls_cafile: the self-signed certificate cannot be verified, so no password is sent.
    server = make_server(mta={"smarthost": smarthost.route, "smarthost_user": "office",
                              "smarthost_password": "s3cret", "retry_intervals": ["1h"]})
    server.add_user(SENDER)
    [queue_id] = queue(server, SENDER, ["someone@anywhere.test"])
    entry = wait_until(lambda: (e := server.store.queue_entry(queue_id)).attempts == 1 and e, what="one attempt")
    assert "TLS" in entry.last_error
    assert smarthost.messages == []
