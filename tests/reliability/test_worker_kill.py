"""Crash safety with ``[server] workers = 2``: one worker at a time is killed with SIGKILL.

The load and the checks are those of ``test_crash`` (4 SMTP clients to local users and,
relayed, to a receiving MTA; IMAP APPEND and EXPUNGE; POP3 deletions and QUIT). Here the
supervisor stays up and starts a new worker; the clients of the other worker go on, and
the killed worker's clients reconnect. A kill aimed at a queue delivery hits the first
worker, which runs the relay queue: its successor must take over the dead worker's
deliveries (their owner is gone) and never a live one's.

CI runs 4 kills; ``pytest -m slow`` runs 20.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from appliance.supervisor import CRASH_UPTIME
from tests.reliability.test_crash import Harness, crash_run
from tests.system.test_workers import wait_for, worker_pids_when_up

RESTART_WITHIN = 5.0  # seconds: the supervisor restarts at once; the new worker needs a moment to start under load


class WorkerHarness(Harness):
    """Kills one worker per round; the supervisor, not the test, starts it again."""

    pids: list[int] = []
    serving_since: dict[int, float] = {}  # pid -> when the test saw it serve

    def start(self) -> None:
        if self.proc is None:
            super().start()
            self.pids = wait_for(lambda: (pids := worker_pids_when_up(self.proc)) and all(pids) and pids,
                                 what="the workers")
            self.serving_since = {pid: time.monotonic() for pid in self.pids}
            return
        killed = time.monotonic()
        old = set(self.pids)
        try:
            self.pids = wait_for(lambda: (pids := worker_pids_when_up(self.proc)) and all(pids)
                                 and len(old & set(pids)) == len(pids) - 1 and pids, timeout=15, what="a new worker")
        except AssertionError as e:
            raise AssertionError(f"{e}; the server's log ends:\n{self.proc.log[-4000:]}") from None
        assert time.monotonic() - killed < RESTART_WITHIN, "the killed worker came back too late"
        self.serving_since.update({pid: time.monotonic() for pid in set(self.pids) - old})

    def kill_round(self, target: str) -> None:
        time.sleep(0.2 + random.random() * 0.4)
        if target != "random":
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and not self._in_flight(target):
                time.sleep(0.0005)
            time.sleep(random.random() * 0.002)
        # The relay queue runs in the first worker; any other operation may be on either.
        victim = self.pids[0] if target == "queue" else random.choice(self.pids)
        # A worker killed right after it started counts towards a crash loop, which the
        # supervisor slows down on purpose (appliance/supervisor.py): kill grown-up ones.
        time.sleep(max(0.0, self.serving_since[victim] + CRASH_UPTIME + 0.2 - time.monotonic()))
        os.kill(victim, signal.SIGSTOP)
        time.sleep(0.02)
        with self.ledger.lock:
            # An operation in flight may be on the other worker and still succeed; it then
            # ends normally and is counted as acknowledged, which is only stricter.
            self.ledger.killed(self.kills)
        if self.sink.at_once and victim == self.pids[0]:
            self.kills["queue"] += 1
        os.kill(victim, signal.SIGKILL)


def test_killed_workers_lose_and_double_nothing(tmp_path):
    crash_run(tmp_path, kills=4, harness=WorkerHarness, workers=2)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_twenty_worker_kills(tmp_path):
    crash_run(tmp_path, kills=20, harness=WorkerHarness, workers=2)
