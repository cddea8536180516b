"""appliance.mta.router as the SMTP server uses it: routing kinds and one-transaction accept."""

from types import SimpleNamespace

import pytest

from appliance.mta.router import Envelope, Kind, Recipient, accept, route
from appliance.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store.sqlite")
    s.add_domain("example.org")
    s.add_user("alice@example.org", "pw")
    s.add_user("bob@example.org", "pw")
    s.add_alias("team@example.org", ["alice@example.org", "bob@example.org", "friend@remote.test"])
    yield s
    s.close()


def test_route_kinds(store):
    local, alias, unknown, remote = route(store, ["Alice@Example.ORG", "team@example.org", "carol@example.org",
                                                  "someone@remote.test"])
    assert local.kind is Kind.LOCAL and [u.address for u in local.users] == ["alice@example.org"]
    assert alias.kind is Kind.LOCAL and len(alias.users) == 2 and alias.external == ("friend@remote.test",)
    assert unknown.kind is Kind.UNKNOWN and not unknown.users
    assert remote.kind is Kind.REMOTE and remote.external == ("someone@remote.test",)


def test_catch_all(store):
    store.add_alias("@example.org", ["bob@example.org"])
    [r] = route(store, ["anything@example.org"])
    assert r.kind is Kind.LOCAL and [u.address for u in r.users] == ["bob@example.org"]


def test_accept_writes_local_copies_and_queue_rows_once(store):
    routes = route(store, ["team@example.org", "alice@example.org", "someone@remote.test", "friend@REMOTE.test"])
    envelope = Envelope(sender="sender@remote.test", recipients=tuple(Recipient(r) for r in routes),
                        message_id="ABC", envid="e1", ret="HDRS")
    result = accept(SimpleNamespace(store=store), envelope, b"Subject: t\r\n\r\nbody\r\n")
    assert len(result.uids) == 2  # alice once, although reached twice
    assert sorted(r.recipient.lower() for r in store.list_queue()) == ["friend@remote.test", "someone@remote.test"]
    alice = store.get_user("alice@example.org")
    [m] = store.list_messages(store.get_mailbox(alice.id, "INBOX").id)
    assert store.get_raw(m.blob_id).startswith(b"Return-Path: <sender@remote.test>\r\nSubject: t\r\n")


def test_accept_remote_only_adds_no_return_path(store):
    [r] = route(store, ["someone@remote.test"])
    accept(SimpleNamespace(store=store), Envelope("", (Recipient(r, frozenset({"NEVER"})),), "X"), b"Subject: t\r\n\r\n")
    [row] = store.list_queue()
    assert row.sender == "" and b"Return-Path" not in store.get_raw(row.blob_id)
    assert '"notify": ["NEVER"]' in row.dsn
