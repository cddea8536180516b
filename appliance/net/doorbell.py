"""Worker doorbells: one Unix datagram socket per worker process, in the data folder.

With ``[server] workers`` above 1 each worker commits to the store on its own; the change
journal (``store/journal.py``) carries what a commit changed, and the doorbell says *when*
to read it. After each commit that wrote a journal row, the worker sends one byte to
every other worker's socket; a worker that hears it asks its store to catch up, which
publishes the others' events to its IDLE clients, caches and queue runner. A datagram
costs a few microseconds and needs no connection: a sleeping or restarting worker simply
misses it, and its store's once-a-second check (``store/db.py``) still reads the journal.

The same socket answers requests of the first worker's admin: a report (pid, sessions,
CPU, memory) for the dashboard's list of workers (``gather``), and a catch-up that
answers once done, for the admin's ``notify`` after ``kotakpos import`` (``catch_up_all``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import select
import socket
import threading
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("kotakpos.net")

RING = b"w"      # "I committed: read the journal"
CATCH_UP = b"c"  # "read the journal, then answer" (another process wrote to the store)
CERTIFICATE = b"t"  # "the TLS certificate files changed: load them" (ACME renewed it)
REPORT = b"r"    # "send me your report"
# (answers go to the sender's address, as JSON with the worker's "index")
REPORT_SIZE = 1 << 20  # the receive buffer for answers
DATAGRAM_MAX = 150_000  # a datagram Linux sends with its default buffers (net.core.wmem_default: 208 KiB)


def socket_path(folder: Path, index: int) -> Path:
    return folder / f"{index}.sock"


class Doorbell:
    """Worker ``index`` of ``count``: rings the others after its commits, hears their rings."""

    def __init__(self, folder: Path, index: int, count: int, on_ring: Callable[[], None],
                 report: Callable[[], dict], on_certificate: Callable[[], None]):
        self.index = index
        self.on_ring = on_ring
        self.report = report
        self.on_certificate = on_certificate
        path = socket_path(folder, index)
        try:
            path.unlink()  # left by this worker's predecessor
        except FileNotFoundError:
            pass
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.setblocking(False)
        os.chmod(path, 0o600)
        self._path = path
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.setblocking(False)  # the store's writer thread rings: it never waits
        self._peers = [str(socket_path(folder, i)) for i in range(count) if i != index]
        self._stop_read, self._stop_write = os.pipe()
        self._thread = threading.Thread(target=self._listen, name="doorbell", daemon=True)
        self._thread.start()

    def ring_others(self) -> None:
        self._tell_others(RING)

    def certificate_changed(self) -> None:
        self._tell_others(CERTIFICATE)

    def _tell_others(self, message: bytes) -> None:
        for peer in self._peers:
            try:
                self._out.sendto(message, peer)
            except OSError:
                # A peer that is restarting (no socket yet) or whose queue is full (rings
                # waiting already: one is as good as many) needs nothing more from us.
                pass

    def _listen(self) -> None:
        while True:
            readable, _, _ = select.select([self._sock, self._stop_read], [], [])
            if self._stop_read in readable:
                return
            rung, waiting = False, []
            while True:  # every ring waiting now is answered by one catch-up
                try:
                    data, sender = self._sock.recvfrom(16)
                except (BlockingIOError, InterruptedError):
                    break
                if data == RING:
                    rung = True
                elif data == CATCH_UP and sender:
                    rung = True
                    waiting.append(sender)
                elif data == REPORT and sender:
                    self._answer_report(sender)
                elif data == CERTIFICATE:
                    self.on_certificate()
            if rung:
                try:
                    self.on_ring()
                except Exception as e:  # e.g. the store is closing: the next ring or check tries again
                    log.debug("doorbell: could not catch up: %s", e)
            for sender in waiting:
                self._answer(sender, {"index": self.index})

    def _answer_report(self, sender: str) -> None:
        report = self.report()
        if len(json.dumps(report)) > DATAGRAM_MAX and "session_list" in report:
            # thousands of sessions: the counts still fit in one datagram
            report["session_list"], report["session_list_cut"] = [], True
        self._answer(sender, report)

    def _answer(self, sender: str, answer: dict) -> None:
        try:
            self._out.sendto(json.dumps(answer).encode(), sender)
        except OSError as e:
            log.debug("doorbell: could not answer a request: %s", e)

    def close(self) -> None:
        os.write(self._stop_write, b"x")
        self._thread.join(2.0)
        self._sock.close()
        self._out.close()
        os.close(self._stop_read)
        os.close(self._stop_write)
        try:
            self._path.unlink()
        except FileNotFoundError:
            pass


def gather(folder: Path, count: int, own: dict, own_index: int, timeout: float = 1.0) -> list[dict]:
    """Every worker's report, in worker order (``own``: the caller's, asked of nobody).

    A worker that does not answer within ``timeout`` (restarting, or stuck) is listed with
    its index only, so the list always has ``count`` entries.
    """
    others = [i for i in range(count) if i != own_index]
    reports = {own_index: own, **_ask(folder, others, REPORT, timeout)}
    return [reports.get(i, {"index": i}) for i in range(count)]


def catch_up_all(folder: Path, count: int, own_index: int, timeout: float = 10.0) -> None:
    """Have every other worker publish what other processes committed; return once they
    have (or ``timeout`` passed: a restarting worker reads the journal as it starts)."""
    _ask(folder, [i for i in range(count) if i != own_index], CATCH_UP, timeout)


def _ask(folder: Path, indices: list[int], request: bytes, timeout: float) -> dict[int, dict]:
    """Send ``request`` to the workers ``indices``; their answers by index, as they came in time."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, REPORT_SIZE)
    sock.bind(f"\0kotakpos-ask-{os.getpid()}-{threading.get_ident()}")  # abstract: nothing to clean up
    answers: dict[int, dict] = {}
    try:
        asked = 0
        for i in indices:
            try:
                sock.sendto(request, str(socket_path(folder, i)))
                asked += 1
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN):
                    raise
        deadline = time.monotonic() + timeout
        while len(answers) < asked:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                break
            answer = json.loads(sock.recv(REPORT_SIZE))
            answers[answer["index"]] = answer
    finally:
        sock.close()
    return answers
