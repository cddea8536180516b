"""Crash safety: a real ``kotakpos serve`` under load, killed with SIGKILL again and again.

Several smtplib clients send mail (to local users and, relayed, to a receiving MTA)
while an IMAP client APPENDs and EXPUNGEs and a POP3 client deletes and QUITs. Each
round the server is killed with SIGKILL — some rounds at a random moment, the others
the instant an APPEND, an EXPUNGE, a POP3 QUIT or a queue delivery is in flight — and
restarted. Afterwards:

* every message acknowledged (SMTP 250, APPEND OK) is in its mailbox exactly once,
  unless a deletion of it was acknowledged (or was in flight at a kill);
* nothing acknowledged as deleted (EXPUNGE OK, POP3 +OK to QUIT) came back;
* no message is stored twice, acknowledged or not;
* every relayed message acknowledged with 250 reached the receiving MTA (at least once:
  a kill between the remote 250 and our commit may send it twice, RFC 5321 §6.1);
* ``PRAGMA integrity_check`` says ok.

CI runs 10 kills; ``pytest -m slow`` runs 40.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import random
import re
import signal
import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from appliance.store import Store
from tests.protocol.mta_sink import Sink
from tests.system.process import ServeProcess

PASSWORD = "crash test password"
USERS = ("alice@example.org", "bob@example.org", "carol@example.org")
MARKER = re.compile(rb"^Subject: (m-[\w-]+)\r?$", re.MULTILINE)
TARGETS = ("random", "append", "expunge", "pop3-quit", "queue")


@dataclass
class Ledger:
    """What the clients were told. Guarded by ``lock``; filled by the client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    delivered: set = field(default_factory=set)        # markers acknowledged into a local mailbox
    relayed: set = field(default_factory=set)          # markers acknowledged for the remote MTA
    deleted: set = field(default_factory=set)          # markers whose deletion was acknowledged
    maybe_deleted: set = field(default_factory=set)    # deletions in flight at a kill: either outcome is fine
    in_flight: dict = field(default_factory=dict)      # target -> markers of the operation under way

    def begin(self, target: str, markers=()) -> None:
        with self.lock:
            self.in_flight[target] = set(markers)

    def end(self, target: str) -> None:
        with self.lock:
            self.in_flight.pop(target, None)

    def killed(self, kills: Counter) -> None:
        """A kill came now: count each operation under way; a deletion in flight may or may
        not have happened. The caller holds ``lock``."""
        for kind, markers in self.in_flight.items():
            kills[kind] += 1
            if kind in ("expunge", "pop3-quit"):
                self.maybe_deleted |= markers


class Harness:
    def __init__(self, data_dir, sink: Sink):
        self.data_dir = data_dir
        self.sink = sink
        self.ledger = Ledger()
        self.proc: ServeProcess | None = None
        self.up = threading.Event()       # set while a server is ready to take clients
        self.stop = threading.Event()     # the test is over: clients finish
        self.seq = 0
        self.seq_lock = threading.Lock()
        self.kills: Counter = Counter()   # target -> kills made while it was in flight
        self.offset: int | None = None    # the port offset of the first start, kept across restarts

    def marker(self, kind: str) -> str:
        with self.seq_lock:
            self.seq += 1
            return f"m-{kind}-{self.seq}"

    def start(self) -> None:
        self.proc = ServeProcess(self.data_dir, offset=self.offset)
        self.offset = self.proc.offset
        self.proc.wait_ready()
        self.up.set()

    def port(self, name: str) -> int:
        return self.proc.port(name)

    def wait_up(self) -> bool:
        while not self.stop.is_set():
            if self.up.wait(0.1):
                return True
        return False

    # -- clients ------------------------------------------------------------------------

    def smtp_client(self, n: int) -> None:
        while self.wait_up():
            try:
                with smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10) as smtp:
                    while not self.stop.is_set():
                        remote = random.random() < 0.2
                        marker = self.marker("relay" if remote else "smtp")
                        rcpt = f"user{n}@remote.test" if remote else random.choice(USERS)
                        smtp.sendmail("load@client.test", [rcpt],
                                      f"Subject: {marker}\r\nFrom: load@client.test\r\n\r\nbody {marker}\r\n")
                        with self.ledger.lock:
                            (self.ledger.relayed if remote else self.ledger.delivered).add(marker)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)

    def imap_append_client(self) -> None:
        while self.wait_up():
            try:
                imap = imaplib.IMAP4("127.0.0.1", self.port("imap"), timeout=10)
                imap.login("alice@example.org", PASSWORD)
                while not self.stop.is_set():
                    marker = self.marker("append")
                    raw = f"Subject: {marker}\r\nFrom: alice@example.org\r\n\r\nappended {marker}\r\n".encode()
                    self.ledger.begin("append", [marker])
                    typ, _ = imap.append("INBOX", None, None, raw)
                    self.ledger.end("append")
                    if typ == "OK":
                        with self.ledger.lock:
                            self.ledger.delivered.add(marker)
            except (OSError, imaplib.IMAP4.error):
                self.ledger.end("append")
                time.sleep(0.05)

    def imap_expunge_client(self) -> None:
        """bob deletes his three oldest messages with STORE \\Deleted + EXPUNGE, over and over."""
        while self.wait_up():
            try:
                imap = imaplib.IMAP4("127.0.0.1", self.port("imap"), timeout=10)
                imap.login("bob@example.org", PASSWORD)
                while not self.stop.is_set():
                    typ, data = imap.select("INBOX")
                    if typ != "OK" or int(data[0]) < 3:
                        time.sleep(0.05)
                        continue
                    typ, data = imap.fetch("1:3", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                    markers = {m.decode() for part in data if isinstance(part, tuple) for m in MARKER.findall(part[1])}
                    with self.ledger.lock:  # from the STORE on, a kill may leave them either way
                        self.ledger.maybe_deleted |= markers
                    imap.store("1:3", "+FLAGS", "(\\Deleted)")
                    self.ledger.begin("expunge", markers)
                    typ, _ = imap.expunge()
                    self.ledger.end("expunge")
                    if typ == "OK":
                        with self.ledger.lock:
                            self.ledger.deleted |= markers
            except (OSError, imaplib.IMAP4.error):
                self.ledger.end("expunge")
                time.sleep(0.05)

    def pop3_client(self) -> None:
        """carol downloads and deletes her two oldest messages per session."""
        while self.wait_up():
            try:
                pop = poplib.POP3("127.0.0.1", self.port("pop3"), timeout=10)
                pop.user("carol@example.org")
                pop.pass_(PASSWORD)
                count = pop.stat()[0]
                markers = set()
                for number in range(1, min(count, 2) + 1):
                    lines = pop.top(number, 0)[1]
                    markers |= {m.decode() for line in lines for m in MARKER.findall(line)}
                    pop.dele(number)
                with self.ledger.lock:
                    self.ledger.maybe_deleted |= markers
                self.ledger.begin("pop3-quit", markers)
                reply = pop.quit()
                self.ledger.end("pop3-quit")
                if reply.startswith(b"+OK"):
                    with self.ledger.lock:
                        self.ledger.deleted |= markers
            except (OSError, poplib.error_proto):
                self.ledger.end("pop3-quit")
                time.sleep(0.05)

    # -- the killer -----------------------------------------------------------------------

    def kill_round(self, target: str) -> None:
        """Let the load run, then SIGKILL: at a random moment, or just after ``target`` was sent.

        For a target the server is first frozen (SIGSTOP) a random 0-2 ms after the client
        sent the command, so the kill lands while the client still waits for the answer —
        whether the server had not started it, was in the middle, or was committing.
        Replies already on their way get 20 ms to reach the clients before the
        in-flight operations are counted; nothing can answer after that.
        """
        time.sleep(0.2 + random.random() * 0.4)
        if target != "random":
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and not self._in_flight(target):
                time.sleep(0.0005)
            time.sleep(random.random() * 0.002)
        os.kill(self.proc.proc.pid, signal.SIGSTOP)
        self.up.clear()
        time.sleep(0.02)
        with self.ledger.lock:
            self.ledger.killed(self.kills)
            self.ledger.in_flight.clear()
        if self.sink.at_once:
            self.kills["queue"] += 1
        self.proc.kill()

    def _in_flight(self, target: str) -> bool:
        if target == "queue":
            return self.sink.at_once > 0
        with self.ledger.lock:
            return target in self.ledger.in_flight


def _prepare(data_dir, sink: Sink, workers: int) -> None:
    data_dir.mkdir()
    (data_dir / "kotakpos.toml").write_text(f"""
[server]
workers = {workers}

[auth]
allow_plaintext = true
trusted_networks = ["127.0.0.0/8"]

[mta]
routes = {{ "remote.test" = "{sink.route}" }}
retry_intervals = ["1s"]

[dns]
resolver = "none"
""")
    store = Store.in_folder(data_dir)
    store.add_domain("example.org")
    for address in USERS:
        store.add_user(address, PASSWORD)
    store.close()


def _stored_markers(data_dir) -> tuple[Counter, str, int]:
    """Markers found in every mailbox, the integrity check, and rows still queued."""
    store = Store.in_folder(data_dir)
    try:
        found: Counter = Counter()
        for address in USERS:
            user = store.get_user(address)
            for mailbox in store.list_mailboxes(user.id):
                for row in store.list_messages(mailbox.id):
                    found.update(m.decode() for m in MARKER.findall(store.get_raw(row.blob_id))[:1])
        return found, store.integrity_check(), len(store.list_queue())
    finally:
        store.close()


def crash_run(tmp_path, kills: int, harness=Harness, workers: int = 1) -> None:
    """``harness``: Harness kills the whole server; a subclass may kill less (one worker)."""
    sink = Sink(stall=0.1)  # queue deliveries take a moment, so a kill can land in one
    data_dir = tmp_path / "data"
    _prepare(data_dir, sink, workers)
    h = harness(data_dir, sink)
    clients = [threading.Thread(target=h.smtp_client, args=(n,), daemon=True) for n in range(4)]
    clients += [threading.Thread(target=fn, daemon=True)
                for fn in (h.imap_append_client, h.imap_expunge_client, h.pop3_client)]
    try:
        h.start()
        for t in clients:
            t.start()
        # Kills land in every kind of operation first, then at random moments. Fast
        # operations (a POP3 QUIT takes one fsync) may finish before the signal lands;
        # such a round counts as a random kill and the target is tried again.
        rounds = 0
        while rounds < kills * 3:
            missed = [t for t in TARGETS if t != "random" and not h.kills[t]]
            if rounds >= kills and not missed:
                break
            h.kill_round(missed[rounds % len(missed)] if missed else random.choice(TARGETS))
            rounds += 1
            h.start()
        time.sleep(0.5)
        h.stop.set()
        for t in clients:
            t.join(15)
        # Let the queue drain to the receiving MTA (at the sink's pace: a long run leaves a
        # backlog), until it is done or nothing arrived for 30 s; then stop cleanly.
        arrived, last_arrival = 0, time.monotonic()
        while not h.ledger.relayed <= _sink_markers(sink) and time.monotonic() - last_arrival < 30:
            if len(sink.messages) > arrived:
                arrived, last_arrival = len(sink.messages), time.monotonic()
            time.sleep(0.2)
        h.proc.terminate()
    finally:
        h.stop.set()
        if h.proc is not None:
            h.proc.kill()
        sink.close()

    ledger = h.ledger
    found, integrity, queued = _stored_markers(data_dir)
    at_sink = Counter(m for message in sink.messages for m in _markers(message.data))
    must_be_there = ledger.delivered - ledger.deleted - ledger.maybe_deleted
    missing = sorted(m for m in must_be_there if found[m] == 0)
    doubled = sorted(m for m, n in found.items() if n > 1)
    resurrected = sorted(m for m in ledger.deleted if found[m])
    lost_relays = sorted(ledger.relayed - set(at_sink))

    print(f"\ncrash safety ({harness.__name__}): {rounds} SIGKILLs survived (in flight at a kill: {dict(h.kills)}); "
          f"{len(ledger.delivered)} acknowledged deliveries and appends checked, {len(ledger.deleted)} acknowledged "
          f"deletions checked, {len(ledger.relayed)} relayed messages checked "
          f"({sum(at_sink.values()) - len(at_sink)} sent twice after a kill); integrity_check {integrity}")
    assert integrity == "ok"
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
    assert not doubled, f"{len(doubled)} messages stored twice, e.g. {doubled[:5]}"
    assert not resurrected, f"{len(resurrected)} deleted messages came back, e.g. {resurrected[:5]}"
    assert not lost_relays, f"{len(lost_relays)} relayed messages never arrived ({queued} still queued)"
    assert len(ledger.delivered) > 100 and ledger.deleted and ledger.relayed, "too little load to prove anything"
    for target in ("append", "expunge", "pop3-quit", "queue"):
        assert h.kills[target], f"no kill landed during {target}"


def _markers(data: bytes) -> list[str]:
    return [m.decode() for m in MARKER.findall(data)[:1]]


def _sink_markers(sink: Sink) -> set:
    with sink.lock:
        return {m for message in sink.messages for m in _markers(message.data)}


def test_nothing_acknowledged_is_lost_or_doubled_across_sigkills(tmp_path):
    crash_run(tmp_path, kills=10)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_forty_sigkills(tmp_path):
    crash_run(tmp_path, kills=40)
