"""Many clients on the same mailboxes at once, as Dovecot's imaptest runs them.

Each client picks commands at random (SELECT, EXAMINE, FETCH, STORE, SEARCH, EXPUNGE,
APPEND, COPY, MOVE, CLOSE, UNSELECT, NOOP, some with CONDSTORE; some clients speak
IMAP4rev2) on two mailboxes that all of them share, and checks every response against
what it was told before (``MailboxView``): the server must never
contradict itself, never fail a command, and never log a traceback. A few seconds
here; ``-m slow`` runs ten clients for a minute.
"""

from __future__ import annotations

import random
import re
import threading
import time

import pytest

from tests.protocol.imapconv import Conversation, deliver, message
from tests.protocol.imapstate import MailboxView
from tests.protocol.mta_helpers import wait_until

ADDRESS = "stress@example.org"
MAILBOXES = ("INBOX", "Shared")
FLAGS = ("\\Seen", "\\Flagged", "\\Deleted", "\\Answered", "$Work")
_SEARCH = re.compile(rb"\* SEARCH((?: \d+)*)")


class StressClient:
    """One client: a conversation, what it was told, and what went wrong."""

    def __init__(self, server, seed: int) -> None:
        self.conv = Conversation.open(server)
        self.conv.login(ADDRESS)
        self.random = random.Random(seed)
        self.rev2 = seed % 3 == 2  # every third client speaks IMAP4rev2 (RFC 9051): no RECENT, ESEARCH
        if self.rev2:
            self.conv.transact("OK", "ENABLE IMAP4rev2")
        self.view = MailboxView()
        self.selected = False
        self.read_only = False  # the mailbox was EXAMINEd: changes are refused READ-ONLY
        self.failures: list[str] = []
        self.commands = 0

    def run(self, deadline: float) -> None:
        try:
            while time.monotonic() < deadline and not self.failures and not self.view.problems:
                self.step()
        except Exception as exc:  # noqa: BLE001 - a dropped connection is a finding, not a crash of the test
            self.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.conv.close()

    def step(self) -> None:
        r = self.random
        exists = self.view.exists
        if self.selected and r.random() < 0.02:
            self.command(r.choice(["CLOSE", "UNSELECT"]))
            self.view.closed()
            self.selected = False
            return
        if not self.selected or r.random() < 0.05:
            verb = "EXAMINE" if r.random() < 0.2 else "SELECT"
            self.view.selecting()
            self.command(f"{verb} {r.choice(MAILBOXES)}")
            self.selected = True
            self.read_only = verb == "EXAMINE"
            return
        choice = r.random()
        other = r.choice(MAILBOXES)
        some = self.some_messages(exists)
        if choice < 0.1:
            raw = message(f"stress {r.randrange(1000)}", body="Lorem ipsum.\r\n" * r.randrange(1, 50))
            self.command(b"APPEND %s {%d+}\r\n%s" % (other.encode(), len(raw), raw))
        elif some is None or choice < 0.2:
            self.command("NOOP")
        elif choice < 0.4:
            self.command(r.choice([f"FETCH {some} (UID FLAGS)", f"FETCH {some} (ENVELOPE BODYSTRUCTURE UID)",
                                   f"FETCH {some} (BODY.PEEK[] RFC822.SIZE)", "UID FETCH 1:* (FLAGS)",
                                   f"FETCH {some} (BODY[HEADER.FIELDS (SUBJECT)] BINARY.PEEK[1])",
                                   "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)"]))
        elif choice < 0.6:
            flags = " ".join(r.sample(FLAGS, r.randrange(1, 3)))
            self.command(f"STORE {some} {r.choice('+-')}FLAGS ({flags})")
        elif choice < 0.68:
            self.command(r.choice(["SEARCH FLAGGED", "SEARCH NOT SEEN SUBJECT stress", f"UID SEARCH {some}",
                                   "SEARCH RETURN (MIN MAX COUNT) MODSEQ 1"]))
        elif choice < 0.78:
            self.command(r.choice(["EXPUNGE", "UID EXPUNGE 1:*"]))
        elif choice < 0.88:
            low = r.randrange(1, 200)
            self.command(r.choice([f"COPY {some} {other}", f"UID COPY {low}:{low + 3} {other}"]))
        else:
            self.command(r.choice([f"MOVE {some} {other}", f"UID MOVE {self.random.randrange(1, 100)}:* {other}"]))

    def some_messages(self, exists: int) -> str | None:
        """A sequence set within what the client knows, or None in an empty mailbox."""
        if exists == 0:
            return None
        first = self.random.randint(1, exists)
        last = min(exists, first + self.random.randrange(5))
        return str(first) if first == last else f"{first}:{last}"

    def command(self, command: str | bytes) -> None:
        conv = self.conv
        tag = conv.next_tag()
        if isinstance(command, str):
            command = command.encode()
        conv.send(tag.encode() + b" " + command + b"\r\n")
        untagged, tagged = conv.read_until(tag)
        self.commands += 1
        if command.startswith(b"EXAMINE") or command.startswith(b"SELECT"):
            self.view.selecting()
        for line in untagged:
            self.view.feed(line)
            if self.rev2 and line.endswith(b" RECENT"):
                self.failures.append(f"RECENT to an IMAP4rev2 client: {line!r}")  # RFC 9051 has no RECENT
            if command.startswith((b"FETCH", b"STORE", b"SEARCH")) and line.endswith(b" EXPUNGE"):
                # RFC 3501 §7.4.1: sequence numbers may not shift under these
                self.failures.append(f"EXPUNGE during {command[:20]!r}")
            search = _SEARCH.match(line)
            if search and not command.startswith(b"UID"):
                numbers = [int(n) for n in search.group(1).split()]
                if any(n > self.view.exists for n in numbers):
                    self.failures.append(f"SEARCH beyond EXISTS {self.view.exists}: {line[:120]!r}")
        writes = (b"STORE", b"EXPUNGE", b"UID EXPUNGE", b"MOVE", b"UID MOVE")
        if self.read_only and command.startswith(writes) and b" NO [READ-ONLY] " in tagged:
            return
        if not tagged.startswith(tag.encode() + b" OK"):
            self.failures.append(f"{command[:60]!r} -> {tagged[:120]!r}")


def run_stress(server, clients: int, seconds: float) -> None:
    server.add_user(ADDRESS)
    server.store.create_mailbox(server.store.get_user(ADDRESS).id, "Shared")
    for n in range(20):
        deliver(server, ADDRESS, message(f"stress seed {n}", body="Seed.\r\n" * n))
    crowd = [StressClient(server, seed) for seed in range(clients)]
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=client.run, args=(deadline,)) for client in crowd]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    problems = [p for client in crowd for p in client.failures + client.view.problems]
    assert problems == []
    assert all(client.commands > 5 for client in crowd)  # each really took part
    assert server.tracebacks() == []
    # what was expunged under the others' eyes (RFC 2180 §4.1) is let go once they have all left
    wait_until(lambda: _kept(server) == 0, what="the kept expunged messages released")


def _kept(server) -> int:
    with server.store.db.reader() as conn:
        return conn.execute("SELECT count(*) FROM expunged_kept").fetchone()[0]


def test_clients_sharing_mailboxes_are_never_told_contradictions(server):
    run_stress(server, clients=5, seconds=3.0)


@pytest.mark.slow
def test_ten_clients_for_a_minute(server):
    run_stress(server, clients=10, seconds=60.0)
