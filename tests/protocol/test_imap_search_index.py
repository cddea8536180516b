"""IMAP SEARCH while the full-text index is built lazily (``store/search.py``): exact during a
burst of SMTP deliveries, complete a moment after it, kept within its caps under a stream
that never pauses, and caught up after a restart."""

import time

import pytest

from appliance.smtp import replies as R
from appliance.store import search
from tests.protocol.imapconv import message, session
from tests.protocol.smtp_wire import Wire

pytestmark = pytest.mark.in_process(reason="it sets the search indexer's timing and reads how far its index goes")

ALICE = "alice@example.org"
NEVER = 3600.0  # a look interval no test outlasts: the indexer then only indexes at a cap


def send(c: Wire, n: int, body: str = "") -> float:
    """Message ``n`` to alice over an open SMTP connection; returns when its 250 came."""
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<bob@remote.test>")
    c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    c.transact(R.R354_START_DATA, "DATA")
    c.send_raw(message(f"burst {n}", f"word{n}x and some filler text\r\n{body}") + b".\r\n")
    c.expect("250 *")
    return time.monotonic()


def stream(server, until, body: str = "") -> list[float]:
    """Messages 1, 2, ... to alice, each sent on the 250 of the one before, until ``until(times)``;
    returns ``times``: when the stream started, then when each 250 came."""
    smtp = Wire.open(server)
    smtp.ehlo()
    times = [time.monotonic()]
    while not until(times):
        if len(times) % 500 == 0:  # within [smtp] max_messages_per_session
            smtp.close()
            smtp = Wire.open(server)
            smtp.ehlo()
        times.append(send(smtp, len(times), body))
    smtp.close()
    return times


def never_paused(times: list[float]) -> None:
    """The premise of a test of the indexer under a stream: no gap long enough for it to see a pause."""
    pause = max(b - a for a, b in zip(times, times[1:]))
    assert pause < search.LOOK_SECONDS, f"the stream paused for {pause:.2f} s: the box is too slow to tell"


def newest_blob(server) -> int:
    inbox = server.store.get_mailbox(server.store.get_user(ALICE).id, "INBOX")
    return server.store.list_messages(inbox.id)[-1].blob_id


def searched(imap, criteria: str) -> list[int]:
    lines = imap.transact("OK", f"UID SEARCH {criteria}")
    return [int(n) for n in lines[0].split()[2:]]


def wait_indexed(server, blob_id: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while server.store.search_index.indexed_upto < blob_id:
        assert time.monotonic() < deadline, f"the index stopped at {server.store.search_index.indexed_upto} < {blob_id}"
        time.sleep(0.05)


@pytest.fixture
def lazy(make_server, monkeypatch):
    """A server whose indexer starts with the timing a test sets (``lazy(LOOK_SECONDS=...)``)."""
    def start(data_dir=None, **timing):
        for name, value in timing.items():
            monkeypatch.setattr(search, name, value)
        running = make_server(data_dir)
        if running.store.get_user(ALICE) is None:
            running.add_user(ALICE)
        return running
    return start


def test_search_finds_the_newest_message_of_a_burst_at_once(lazy):
    server = lazy(LOOK_SECONDS=NEVER)
    stream(server, lambda times: len(times) > 30)
    imap = session(server)
    imap.transact("OK", "SELECT INBOX")
    assert searched(imap, "BODY word30x") == [30]
    assert searched(imap, "BODY WORD7X") == [7]
    assert searched(imap, "TEXT burst") == list(range(1, 31))  # in the Subject: headers and body
    assert searched(imap, "BODY nowhere-at-all") == []
    assert server.store.search_index.indexed_upto == 0  # the answers came from the messages themselves
    assert server.store.search_index.wait_caught_up()
    assert server.store.search_index.indexed_upto == newest_blob(server)
    assert searched(imap, "BODY word30x") == [30]  # now from the index: the same
    assert searched(imap, "BODY nowhere-at-all") == []


def test_the_indexer_waits_out_a_burst_and_catches_up_after_it(lazy):
    server = lazy()
    seen = []

    def until(times):
        seen.append(server.store.search_index.indexed_upto)
        return times[-1] - times[0] >= 2 * search.LOOK_SECONDS  # it looks at least once meanwhile

    times = stream(server, until)
    never_paused(times)
    assert max(seen) == 0  # it waited while the mail kept coming
    wait_indexed(server, newest_blob(server))  # nobody asked it to: it noticed the pause
    imap = session(server)
    imap.transact("OK", "SELECT INBOX")
    last = len(times) - 1
    assert searched(imap, f"BODY word{last}x") == [last]


@pytest.mark.parametrize("cap", [{"MAX_BACKLOG_BLOBS": 5}, {"MAX_BACKLOG_BYTES": 20_000},
                                 {"MAX_BACKLOG_SECONDS": 2.0}], ids=lambda cap: next(iter(cap)))
def test_a_stream_that_never_pauses_is_indexed_at_the_cap(lazy, cap):
    server = lazy(**cap)

    def until(times):
        assert times[-1] - times[0] < 20, "the stream went on for 20 s and nothing was indexed"
        return server.store.search_index.indexed_upto > 0

    times = stream(server, until, body=("x" * 78 + "\r\n") * 50)  # 4 KiB each
    never_paused(times)  # so the cap made it index
    streamed = len(times) - 1
    smtp = Wire.open(server)
    smtp.ehlo()
    send(smtp, streamed + 1)
    imap = session(server)
    imap.transact("OK", "SELECT INBOX")
    assert searched(imap, "BODY word1x") == [1]  # indexed
    assert searched(imap, f"BODY word{streamed + 1}x") == [streamed + 1]  # indexed by now or not: exact


def test_a_restart_indexes_what_was_missing(lazy, tmp_path):
    server = lazy(tmp_path / "data", LOOK_SECONDS=NEVER)
    stream(server, lambda times: len(times) > 5)
    last = newest_blob(server)
    assert server.store.search_index.indexed_upto == 0
    server.stop()
    server = lazy(tmp_path / "data", LOOK_SECONDS=1.0)
    wait_indexed(server, last)
    imap = session(server)
    imap.transact("OK", "SELECT INBOX")
    assert searched(imap, "BODY word5x") == [5]
