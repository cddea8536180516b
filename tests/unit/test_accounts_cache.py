"""The accounts cache behind resolve/is_local_domain/get_sieve: every change made through
the store is seen by the very next lookup, and answers from before it are never used."""

from __future__ import annotations

import threading

import pytest

from appliance.store import Store


def test_changes_are_seen_at_once(store):
    assert store.resolve("alice@example.org") is None  # cached "unknown"
    alice = store.add_user("alice@example.org", "pw")
    assert [u.id for u in store.resolve("alice@example.org").users] == [alice.id]
    store.add_alias("team@example.org", ["alice@example.org", "out@remote.test"])
    team = store.resolve("team@example.org")
    assert [u.id for u in team.users] == [alice.id] and team.external == ("out@remote.test",)
    store.delete_alias("team@example.org")
    assert store.resolve("team@example.org") is None
    store.set_quota("alice@example.org", 1000)
    assert store.resolve("alice@example.org").users[0].quota == 1000
    store.delete_user("alice@example.org")
    assert store.resolve("alice@example.org") is None


def test_domains_and_scripts(store):
    assert store.is_local_domain("Example.ORG.")
    assert not store.is_local_domain("other.test")
    store.add_domain("other.test")
    assert store.is_local_domain("other.test")
    store.delete_domain("other.test")
    assert not store.is_local_domain("other.test")
    user = store.add_user("bob@example.org", "pw")
    assert store.get_sieve(user.id) == ""
    store.set_sieve(user.id, 'keep;')
    assert store.get_sieve(user.id) == "keep;"
    store.set_sieve(user.id, "")
    assert store.get_sieve(user.id) == ""


def test_a_failed_change_still_leaves_correct_answers(store):
    store.add_user("carol@example.org", "pw")
    with pytest.raises(Exception):
        store.add_user("carol@example.org", "pw")  # already exists
    assert store.resolve("carol@example.org") is not None


def test_an_answer_read_before_a_change_is_not_kept(store, monkeypatch):
    """A lookup that read the old state while a change committed must not be cached as current."""
    original = store._resolve
    gate, release = threading.Event(), threading.Event()

    def slow(address):
        found = original(address)  # reads the state before the user exists
        gate.set()
        release.wait(5)
        return found

    monkeypatch.setattr(store, "_resolve", slow)
    result = []
    t = threading.Thread(target=lambda: result.append(store.resolve("dave@example.org")))
    t.start()
    gate.wait(5)
    monkeypatch.setattr(store, "_resolve", original)
    store.add_user("dave@example.org", "pw")
    release.set()
    t.join(5)
    assert result == [None]  # the slow reader saw the old state ...
    assert store.resolve("dave@example.org") is not None  # ... which is not what we answer now


def test_expires_for_changes_behind_our_back(store, monkeypatch):
    other = Store(store.path)
    try:
        assert store.resolve("erin@example.org") is None
        other.add_user("erin@example.org", "pw")
        assert store.resolve("erin@example.org") is None  # still the cached answer
        monkeypatch.setattr(store.accounts_cache, "MAX_AGE", 0.0)
        assert store.resolve("erin@example.org") is not None
    finally:
        other.close()
