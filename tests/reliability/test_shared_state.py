"""Two server processes on one data folder behave as one server (what worker processes share).

The second process (``second_worker.py``) stands for another worker: it serves the same
store from its own ports, beside the test's server, as the supervisor's workers do. What
one process does must hold in the other: failed logins and blocks, connection limits,
each message's \\Recent, the session list and the admin's kick, and a dead process's
connection slots are freed.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.admin.api import AdminError
from tests.conftest import PASSWORD
from tests.mda_helpers import plain, send, wait_for
from tests.protocol.imapconv import Conversation, deliver, idler, message


pytestmark = pytest.mark.in_process(reason="its second process (second_worker.py) joins the test's own in-process server as a stand-in worker")

ALICE = "alice@example.org"
ROOT = Path(__file__).resolve().parents[2]


class SecondServer:
    """The stand-in worker process; ``port``, ``connect`` and ``tls_context`` as RunningServer's."""

    def __init__(self, first, overrides: dict):
        self.first = first
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.second_worker", str(first.data_dir), json.dumps(overrides)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the second server process did not start")
        started = json.loads(line)
        self.pid, self.ports = started["pid"], started["ports"]

    def port(self, name: str) -> int:
        return self.ports[name]

    def connect(self, name: str, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port(name)), timeout=timeout)

    def tls_context(self):
        return self.first.tls_context()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(15)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def pair(make_server):
    """(first, second): the test's server and a second process on its data folder."""
    seconds = []

    def start(untrusted_loopback: bool = False, **sections):
        first = make_server(**sections)
        first.store.add_domain("example.org")
        first.add_user(ALICE)
        second = SecondServer(first, {**sections, "untrusted_loopback": untrusted_loopback})
        seconds.append(second)
        return first, second

    yield start
    for second in seconds:
        second.stop()


def greeting_of(server, listener: str = "imap") -> bytes:
    sock = server.connect(listener, 5)
    line = sock.makefile("rb").readline()
    sock.close()
    return line


# -- logins ---------------------------------------------------------------------------------

def test_thirty_wrong_passwords_over_two_processes_are_blocked_like_thirty_on_one(pair, monkeypatch):
    first, second = pair(untrusted_loopback=True,
                         auth={"allow_plaintext": True, "block_after": 30, "fail_delay_max": 0.1})
    # Loopback stands for an internet address here (it is never blocked wholesale otherwise).
    monkeypatch.setattr(first.ctx.auth, "is_trusted", lambda ip: False)

    def guess(server, times):
        conv = Conversation.open(server, "imap")
        for _ in range(times):
            conv.transact("NO", f'LOGIN {ALICE} "wrong"')
        return conv

    at_first = []
    thread = threading.Thread(target=lambda: at_first.append(guess(first, 15)))
    thread.start()
    at_second = guess(second, 15)
    thread.join()
    # The 31st try is refused on both, even with the right password: the address is blocked.
    for conv in (at_first[0], at_second):
        conv.transact("NO", f'LOGIN {ALICE} "{PASSWORD}"')
        assert b"[UNAVAILABLE]" in conv.last
    [entry] = [b for b in first.server.admin.blocked() if b["ip"] == "127.0.0.1"]
    assert entry["failures"] == 30 and entry["until"] > time.time() + 60
    # The admin's unblock in one process lets the address in at the other.
    assert first.server.admin.unblock("127.0.0.1")
    at_second.transact("OK", f'LOGIN {ALICE} "{PASSWORD}"')


def test_twenty_nine_wrong_passwords_over_two_processes_are_not_yet_blocked(pair, monkeypatch):
    first, second = pair(untrusted_loopback=True,
                         auth={"allow_plaintext": True, "block_after": 30, "fail_delay_max": 0.1})
    monkeypatch.setattr(first.ctx.auth, "is_trusted", lambda ip: False)
    for server, times in ((first, 15), (second, 14)):
        conv = Conversation.open(server, "imap")
        for _ in range(times):
            conv.transact("NO", f'LOGIN {ALICE} "wrong"')
    conv.transact("OK", f'LOGIN {ALICE} "{PASSWORD}"')


def test_an_address_the_admin_blocks_is_refused_by_every_process(pair):
    first, second = pair(untrusted_loopback=True, auth={"allow_plaintext": True})
    first.server.admin.block("127.0.0.1", 600)
    conv = Conversation.open(second, "imap")
    conv.transact("NO", f'LOGIN {ALICE} "{PASSWORD}"')
    assert b"[UNAVAILABLE]" in conv.last


# -- connection limits ----------------------------------------------------------------------

def test_the_per_address_limit_counts_the_connections_of_both_processes(pair):
    first, second = pair(server={"max_connections_per_ip": 4})
    held = [first.connect("imap"), first.connect("imap"), second.connect("imap"), second.connect("pop3")]
    for sock in held:
        assert sock.makefile("rb").readline().startswith((b"* OK", b"+OK"))
    assert greeting_of(first).startswith(b"* BYE")
    assert greeting_of(second, "smtp").startswith(b"421")
    held.pop(0).close()  # a slot freed in one process is free for the other
    wait_for(lambda: greeting_of(second).startswith(b"* OK"), what="the freed slot")


def test_the_total_limit_counts_the_connections_of_both_processes(pair):
    first, second = pair(server={"max_connections": 3})
    held = [first.connect("imap"), second.connect("imap"), second.connect("imap")]
    for sock in held:
        assert sock.makefile("rb").readline().startswith(b"* OK")
    assert greeting_of(first).startswith(b"* BYE")
    # SMTP's stress mode sees the server's load, not this process's
    wait_for(lambda: first.server.connections.load == 1.0, what="the server's load")


def test_the_slots_of_a_process_that_died_are_freed(pair):
    first, second = pair(server={"max_connections_per_ip": 3})
    held = [second.connect("imap") for _ in range(3)]
    for sock in held:
        assert sock.makefile("rb").readline().startswith(b"* OK")
    assert greeting_of(first).startswith(b"* BYE")
    second.kill()  # no goodbye, no cleanup of its own
    wait_for(lambda: greeting_of(first).startswith(b"* OK"), timeout=15, what="the dead process's slots")
    assert first.store.runtime.processes() == [os.getpid()]


# -- IMAP \Recent -------------------------------------------------------------------------

def test_each_new_message_is_recent_in_exactly_one_session_of_either_process(pair):
    first, second = pair(auth={"allow_plaintext": True})
    idlers = [idler(server, ALICE) for server in (first, second, first, second)]
    selector = selectors.DefaultSelector()
    for conv in idlers:
        selector.register(conv.sock, selectors.EVENT_READ, conv)
    for n in (1, 2):
        deliver(first, ALICE, message(f"news {n}"))
        recent: dict[Conversation, int] = {}
        deadline = time.monotonic() + 10
        while len(recent) < len(idlers) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                conv = key.data
                while True:  # every line that arrived, also those already buffered
                    line = conv.line()
                    if line.endswith(b" RECENT"):
                        recent[conv] = int(line.split()[1])
                    else:
                        assert line == b"* %d EXISTS" % n
                    if b"\n" not in conv.buf:
                        break
        assert len(recent) == len(idlers)
        # one session holds each message's \Recent: the counts grow by exactly one in total
        assert sum(recent.values()) == n, recent


# -- sessions and the admin -----------------------------------------------------------------

def test_the_admin_of_one_process_lists_and_kicks_a_session_of_the_other(pair):
    first, second = pair(auth={"allow_plaintext": True})
    admin = first.server.admin
    events = admin.subscribe()
    mine = Conversation.open(first, "imap")
    theirs = Conversation.open(second, "imap")
    theirs.login(ALICE)

    def listed():
        return [s for s in admin.sessions() if s["pid"] == second.pid and s["user"] == ALICE]

    [session] = wait_for(listed, what="the other process's session in the list")
    assert session["protocol"] == "imap" and session["id"] != first.ctx.registry.list()[0].id
    assert admin.status()["sessions"] == 2
    wait_for(lambda: any(e.get("type") == "session" and e["session"]["id"] == session["id"]
                         for e in iter(lambda: events.get(timeout=0.1), None)), what="a live event for it")
    assert admin.kick(session["id"])
    with pytest.raises(ConnectionError):
        theirs.transact("OK", "NOOP")
    assert not listed()
    with pytest.raises(AdminError):
        admin.kick(session["id"])
    mine.transact("OK", "NOOP")  # the admin's own process's session is untouched
    events.close()


def test_the_status_sums_the_counters_of_both_processes(pair):
    first, second = pair(mda={"filters": ["greylist"], "greylist_delay": 600})
    for server in (first, second, second):
        with pytest.raises(smtplib.SMTPDataError):
            send(server, plain(subject="greylisted"))
    # since start and today, before any process saved them to the store
    wait_for(lambda: first.server.admin.status()["stats"].get("mda.greylisted") == 3, what="the summed counter")
    assert first.server.admin.status()["today"]["mda.greylisted"] == 3
    second.stop()  # what a process that ended counted still counts
    assert first.server.admin.status()["stats"]["mda.greylisted"] == 3


def test_the_traffic_counts_the_mail_the_other_process_took_in(pair):
    first, second = pair()
    send(second, plain(subject="through the other process"))
    wait_for(lambda: sum(first.server.admin.traffic()["in"]) == 1, what="the message in the admin's traffic")
