"""The runtime state the serving processes share (store/runtime.py), used from several processes."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from appliance.store.runtime import Runtime, reset

CONTEXT = multiprocessing.get_context("fork")


def _in_child(target, *args):
    """Run ``target(*args)`` in a forked process; returns what it put in the queue."""
    results = CONTEXT.Queue()
    child = CONTEXT.Process(target=lambda: results.put(target(*args)))
    child.start()
    value = results.get(timeout=30)
    child.join(30)
    return value, child.pid


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "kotakpos.sqlite"


def _hold_slots(store_path, n):
    runtime = Runtime(store_path)
    return [runtime.open_session("198.51.100.7", 100, 10) for _ in range(n)]


def test_a_dead_processs_slots_and_claims_are_freed_and_its_counters_kept(store_path):
    runtime = Runtime(store_path)

    def work():
        child = Runtime(store_path)
        child.start_recent_claim(5, 40)
        child.publish_counters({"mda.spam": 4}, {("2026-01-01", "mda.spam"): 4})
        return [child.open_session("198.51.100.7", 100, 3) for _ in range(3)]

    ids, pid = _in_child(work)
    assert len(set(ids)) == 3 and None not in ids
    assert runtime.open_session("198.51.100.7", 100, 3) is None  # the child's three fill the address's share
    assert runtime.drop_dead() == [pid]
    assert runtime.open_session("198.51.100.7", 100, 3) not in ids  # freed, and ids are never reused
    assert runtime.start_recent_claim(5, 40)  # the dead process's claim no longer holds
    assert runtime.counters() == {"mda.spam": 4}
    assert runtime.counters("2026-01-01") == {}  # not saved by the dead process: lost, as in a crash
    assert runtime.processes() == [os.getpid()]


def test_what_sessions_of_every_process_were_told_sets_the_horizon_of_kept_expunges(store_path):
    runtime = Runtime(store_path)
    runtime.select(1, 7, 10)
    runtime.select(2, 7, 4)
    runtime.select(3, 8, 1)
    assert runtime.told_horizon(7) == 4
    assert runtime.told_horizon(7, other_than=2) == 10  # the expunging session tells of it itself
    assert runtime.told_horizon(9) is None  # nobody has it selected: nothing to keep

    def work():
        Runtime(store_path).select(4, 7, 2)
        return None

    _, pid = _in_child(work)
    assert runtime.told_horizon(7) == 2  # a session of another process counts
    assert runtime.drop_dead() == [pid]
    assert runtime.told_horizon(7) == 4  # not once its process is gone
    runtime.select(2, None)
    assert runtime.told_horizon(7) == 10


def test_the_total_limit_holds_across_processes(store_path):
    runtime = Runtime(store_path)
    ids, _ = _in_child(_hold_slots, store_path, 1)  # the child is gone but not yet dropped
    assert runtime.open_session("203.0.113.1", 2, None) is not None
    assert runtime.open_session("203.0.113.2", 2, None) is None
    assert runtime.session_count() == 2


def test_the_slots_grow_past_their_first_entries_and_every_process_counts_them(store_path):
    runtime = Runtime(store_path)
    mine = runtime.open_session("203.0.113.9", 1000, 100)

    def fill():
        child = Runtime(store_path)
        return [child.open_session("198.51.100.7", 1000, 100) for _ in range(101)]

    ids, pid = _in_child(fill)  # more than the file first holds: the child grows it
    assert None not in ids[:100] and ids[100] is None  # the address's share is full at 100
    assert len(set(ids[:100]) | {mine}) == 101
    assert runtime.session_count() == 101
    assert runtime.open_session("198.51.100.7", 1000, 100) is None  # this process sees the grown table
    assert runtime.open_session("198.51.100.7", 102, None) is not None  # exempt, but counted in the total
    assert runtime.open_session("203.0.113.9", 102, None) is None
    runtime.close_session(mine)
    assert runtime.drop_dead() == [pid]
    assert runtime.session_count() == 1
    assert runtime.open_session("198.51.100.7", 1000, 2) is not None


def test_each_uid_is_claimed_once_however_many_processes_ask(store_path):
    Runtime(store_path)

    def claims():
        runtime = Runtime(store_path)
        return [uid for uid in range(1, 200) if runtime.start_recent_claim(1, uid)]

    results = CONTEXT.Queue()
    children = [CONTEXT.Process(target=lambda: results.put(claims())) for _ in range(3)]
    for child in children:
        child.start()
    won = [uid for _ in children for uid in results.get(timeout=60)]
    for child in children:
        child.join(30)
    assert sorted(won) == sorted(set(won))  # nobody claimed a UID another one claimed
    assert max(won) == 199


def test_failures_are_counted_across_processes_and_forgotten_when_old(store_path):
    runtime = Runtime(store_path)

    def fail_twice():
        child = Runtime(store_path)
        return [child.record_failure("198.51.100.7", "alice@example.org", 1000.0, 3600, 3, 60)[0].count
                for _ in range(2)]

    assert _in_child(fail_twice)[0] == [1, 2]
    by_ip, by_account = runtime.record_failure("198.51.100.7", "alice@example.org", 1001.0, 3600, 3, 60)
    assert (by_ip.count, by_account.count, by_ip.blocked_until) == (3, 3, 1061.0)
    # much later, once the block is over, counting starts again
    by_ip, _ = runtime.record_failure("198.51.100.7", "alice@example.org", 9000.0, 3600, 3, 60)
    assert (by_ip.count, by_ip.blocked_until) == (1, 0)


def test_reset_empties_everything(store_path):
    runtime = Runtime(store_path)
    runtime.open_session("198.51.100.7", 10, None)
    runtime.close()
    reset(store_path)
    assert Runtime(store_path).session_count() == 0
