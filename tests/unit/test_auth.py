"""Shared login policy: slowing, blocking, trusted networks, the login cache."""

import pytest

from appliance.auth import Authenticator
from appliance.config.schema import AuthSection
from appliance.store import Store


class FakeConn:
    def __init__(self, ip="203.0.113.9", tls=True):
        self.peer_ip = ip
        self.is_tls = tls
        self.is_loopback = ip.startswith("127.")

        class Info:
            listener = "imap"
        self.info = Info()


@pytest.fixture
def store(tmp_path):
    s = Store.in_folder(tmp_path)
    s.add_domain("example.org")
    s.add_user("alice@example.org", "right")
    yield s
    s.close()


def make(store, **changes):
    delays = []
    auth = Authenticator(store, AuthSection(**{"block_after": 3, **changes}), sleep=delays.append)
    return auth, delays


def test_failures_are_answered_ever_more_slowly_then_the_address_is_blocked(store):
    auth, delays = make(store)
    conn = FakeConn()
    for _ in range(3):
        assert auth.login("alice@example.org", "wrong", conn) is None
    assert delays == [0.1, 0.2, 0.4]
    assert auth.blocked(conn)
    assert auth.login("alice@example.org", "right", conn) is None  # even the right password, while blocked
    assert auth.unblock(conn.peer_ip)
    assert auth.login("alice@example.org", "right", conn).address == "alice@example.org"


def test_loopback_is_slowed_per_account_but_never_blocked(store):
    auth, delays = make(store)
    conn = FakeConn("127.0.0.1")
    for _ in range(5):
        auth.login("alice@example.org", "wrong", conn)
    assert not auth.blocked(conn)
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6]


def test_guessing_one_account_from_many_addresses_slows_down(store):
    auth, delays = make(store, block_after=100)
    for n in range(4):
        auth.login("alice@example.org", "wrong", FakeConn(f"198.51.100.{n}"))
    assert delays == [0.1, 0.2, 0.4, 0.8]


def test_plaintext_only_where_allowed(store):
    strict, _ = make(store)
    assert not strict.plaintext_allowed(FakeConn("127.0.0.1", tls=False))
    assert strict.plaintext_allowed(FakeConn("127.0.0.1", tls=True))
    lan, _ = make(store, allow_plaintext=True, trusted_networks=["192.168.1.0/24"])
    assert lan.plaintext_allowed(FakeConn("192.168.1.20", tls=False))
    assert not lan.plaintext_allowed(FakeConn("203.0.113.9", tls=False))


def test_the_login_cache_never_outlives_a_password_change(store):
    auth, _ = make(store)
    conn = FakeConn()
    assert auth.login("alice@example.org", "right", conn)
    assert auth.login("alice@example.org", "right", conn)  # served from the cache
    store.set_password("alice@example.org", "new")
    assert auth.login("alice@example.org", "right", conn) is None
    assert auth.login("alice@example.org", "new", conn)
