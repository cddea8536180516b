"""The queue runner: delivers the relay queue's rows, retries, bounces and warns.

Rules (the queue's contract):

- A row is claimed ('delivering') by one runner job at a time, and records its owner (the
  claiming process: pid and start time). Rows whose owner is gone — a server that stopped
  or died, a killed worker, a killed ``kotakpos queue bounce`` — are made due again, at
  start-up and each time the runner looks at the queue; a live owner's rows are never
  taken. Their remote 250 may have been lost with the crash, so such a message can arrive
  twice, never zero times.
- One process runs the queue (the only one, or the first worker of several: see
  docs/ARCHITECTURE.md), so the limits below hold for the whole server.
- Rows are grouped by destination (a domain's MX, a static route, the smarthost); one
  connection carries every due message for it, up to ``messages_per_connection``. At most
  ``workers`` connections run at once, and ``connections_per_destination`` to one place.
- Each message's outcome is recorded in one store transaction together with any DSN it
  causes, right after the remote server's final reply: a 2xx removes the row, a 5xx
  removes it and bounces, a 4xx or a connection failure schedules the next attempt after
  ``retry_intervals[attempts]`` (the last interval repeats).
- A row older than ``max_queue_time`` that fails again temporarily is bounced (4.4.7).
  Once a row is older than ``delay_warning``, the sender gets one delay DSN.
- DSNs follow ``dsn.wanted`` (RFC 3461 NOTIFY); a message with a null sender never gets
  one. A success DSN ("relayed") is made here only when NOTIFY=SUCCESS was asked and the
  next hop does not speak DSN; otherwise NOTIFY is passed on (RFC 3461 §5.2).
- A message with more than 30 Received headers is looping: bounced without an attempt.

Outgoing bytes lose a leading Return-Path (RFC 5321 §4.4), are DKIM-signed when the
author's domain (From, else the envelope sender) is local, and mail from non-local
senders (forwarding) gets an SRS envelope sender.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from appliance import mime
from appliance.mta import dkim, dsn, sts, transport
from appliance.mta.deliver import Connection, Outgoing, Result, Timeouts, client_contexts
from appliance.mta.errors import DeliveryError
from appliance.store import Delivery, NotFound, Notice, QueueChanged, QueueEntry, QueueOutcome, QueueRow
from appliance.net.dns import make_resolver

log = logging.getLogger("kotakpos.mta")

MAX_RECEIVED = 30
# The runner looks at the queue at least this often, whatever it was told.
IDLE_WAIT = 60.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """"90", "30s", "5m", "4h", "5d" -> seconds. Raises ValueError."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 4h, 1d)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def retry_delay(intervals: list[float], attempts: int) -> float:
    """The wait after the attempt numbered ``attempts`` (0-based) failed; the last repeats."""
    return intervals[min(attempts, len(intervals) - 1)]


def strip_return_path(raw: bytes) -> bytes:
    """Drop leading Return-Path fields (RFC 5321 §4.4: a relay must not pass them on)."""
    while raw[:12].lower() == b"return-path:":
        end = raw.find(b"\r\n")
        while end >= 0 and raw[end + 2:end + 3] in (b" ", b"\t"):
            end = raw.find(b"\r\n", end + 2)
        if end < 0:
            return raw
        raw = raw[end + 2:]
    return raw


def author_domain(raw: bytes) -> str:
    """The domain of the message's author, as DMARC will align it ("" unless there is
    exactly one From field naming one domain: RFC 7489 §6.6.1)."""
    author = mime.author(mime.header_fields(raw[:mime.header_end(raw)]))
    return author.domains[0] if author.single else ""


class QueueRunner:
    """Runs the relay queue for one server: ``start()``, ``wake()``, ``stop(grace)``."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.store = ctx.store
        self.mta = ctx.config.mta
        self.hostname = ctx.hostname
        self.intervals = [parse_duration(t) for t in self.mta.retry_intervals] or [3600.0]
        self.timeouts = Timeouts.from_config(self.mta)
        cafile = self.mta.tls_cafile
        self.contexts = client_contexts(str(Path(ctx.data_dir) / cafile) if cafile else "")
        self.signer = dkim.Signer(ctx.store)
        self.sts = sts.PolicyCache(ctx.data_dir, self.contexts[1], self.mta.mta_sts_port) if self.mta.mta_sts else None
        self.srs = ctx.srs
        self.resolver = make_resolver(ctx.config.dns.resolver, ctx.config.dns.timeout)
        self._wake = threading.Event()
        self._kicks = 0  # wake() and finished jobs count up: the loop looks again even without a queue event
        self._stopping = threading.Event()
        self._lock = threading.Condition()
        self._active: dict[str, int] = {}   # destination key -> jobs running for it
        self._running = 0                    # jobs running in all
        self._connections: set[Connection] = set()  # open outbound connections, cut at stop
        self._pool = ThreadPoolExecutor(max_workers=max(1, self.mta.workers), thread_name_prefix="mta")
        self._thread = threading.Thread(target=self._loop, name="mta-queue", daemon=True)
        self._events = None

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        recovered = self.store.requeue_interrupted(starting=True)
        if recovered:
            log.info("queue: %d message(s) interrupted by the last stop are due again", recovered)
        # Only queue changes wake the runner: every local delivery's mailbox event would
        # otherwise cost it a wake-up and a look for nothing.
        self._events = self.store.subscribe(wants=lambda event: isinstance(event, QueueChanged))
        self._events.notify = self._wake.set
        self._thread.start()

    def wake(self) -> None:
        self._kicks += 1
        self._wake.set()

    def stop(self, grace: float) -> None:
        """Start nothing new; wait up to ``grace`` seconds for connections in flight.

        Rows still in flight after that stay 'delivering' and are retried at the next start.
        """
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._events is not None:
            self._events.close()
        deadline = time.monotonic() + grace
        with self._lock:
            while self._running and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
            if self._running:
                log.warning("queue: %d connection(s) still running at stop; their mail is retried at the next start",
                            self._running)
                for connection in list(self._connections):
                    connection.abort()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- scheduling --------------------------------------------------------------------

    def _loop(self) -> None:
        seen_kicks, deadline = -1, 0.0
        while not self._stopping.is_set():
            self._wake.clear()
            kicks = self._kicks
            if kicks == seen_kicks and time.monotonic() < deadline and not self._queue_news():
                # Woken by queue events this loop has already looked at: nothing new to
                # relay, and the next due row is as far away as it was.
                self._wake.wait(deadline - time.monotonic())
                continue
            seen_kicks = kicks
            try:
                saturated = self._dispatch()
                wait = IDLE_WAIT if saturated else self._until_next_due()
            except Exception:
                log.exception("queue: scheduling failed; trying again shortly")
                wait = 5.0
            deadline = time.monotonic() + wait
            self._wake.wait(wait)

    def _queue_news(self) -> bool:
        """Whether queue events (or an overflow) came since the last look: the subscription
        carries nothing else."""
        return bool(self._events.drain()) if self._events is not None else False

    def _until_next_due(self) -> float:
        due = self.store.next_queue_due()
        if due is None:
            return IDLE_WAIT
        return min(IDLE_WAIT, max(0.0, due - time.time()))

    def _dispatch(self) -> bool:
        """Start a job for each destination with due mail and a free slot.

        Returns True when due mail had to wait for a slot (a finishing job wakes us).
        """
        recovered = self.store.requeue_interrupted()
        if recovered:
            log.info("queue: %d message(s) whose delivering process is gone are due again", recovered)
        now = time.time()
        groups: dict[str, list[QueueRow]] = {}
        for row in self.store.due_queue(now):
            groups.setdefault(transport.destination_key(row.domain, self.mta), []).append(row)
        saturated = False
        for key, rows in groups.items():
            while rows and not self._stopping.is_set():
                if not self._take_slot(key):
                    saturated = True
                    break
                batch, rows = self._batch(rows)
                claimed = self.store.claim_queue([r.id for r in batch], due_by=now)
                if not claimed:
                    self._release_slot(key)
                    continue
                self._pool.submit(self._job, key, claimed)
        return saturated

    def _batch(self, rows: list[QueueRow]) -> tuple[list[QueueRow], list[QueueRow]]:
        """Rows for one connection: up to ``messages_per_connection`` distinct messages."""
        seen: set[tuple[int, str]] = set()
        for i, row in enumerate(rows):
            seen.add((row.blob_id, row.sender))
            if len(seen) > self.mta.messages_per_connection:
                return rows[:i], rows[i:]
        return rows, []

    def _take_slot(self, key: str) -> bool:
        with self._lock:
            if self._running >= self.mta.workers or self._active.get(key, 0) >= self.mta.connections_per_destination:
                return False
            self._running += 1
            self._active[key] = self._active.get(key, 0) + 1
            return True

    def _release_slot(self, key: str) -> None:
        with self._lock:
            self._running -= 1
            self._active[key] -= 1
            if not self._active[key]:
                del self._active[key]
            self._lock.notify_all()
        self._kicks += 1
        self._wake.set()

    # -- one connection's work ---------------------------------------------------------

    def _job(self, key: str, rows: list[QueueRow]) -> None:
        pending = {r.id: r for r in rows}
        try:
            self._deliver(rows, pending)
        except Exception as e:
            if self._stopping.is_set():
                # The server stopped (and closed the store) under this job: nothing is lost,
                # its rows are still 'delivering' and are retried at the next start.
                log.info("queue: delivery to %s cut short by the stop: %s", key, e)
                return
            log.exception("queue: delivery to %s failed unexpectedly", key)
            try:
                self._defer_all(list(pending.values()), DeliveryError("4.3.0", f"local error: {e.__class__.__name__}"))
            except Exception:
                log.exception("queue: could not record the failure; the rows are retried at the next start")
        finally:
            self._release_slot(key)

    def _deliver(self, rows: list[QueueRow], pending: dict[int, QueueRow]) -> None:
        messages: dict[tuple[int, str], list[QueueRow]] = {}
        for row in rows:
            messages.setdefault((row.blob_id, row.sender), []).append(row)
        ready: list[tuple[list[QueueRow], bytes]] = []
        for group in messages.values():
            try:
                raw = strip_return_path(self.store.get_raw(group[0].blob_id))
            except NotFound:
                continue  # deleted by the administrator meanwhile
            if dsn.received_count(raw) > MAX_RECEIVED:
                self._fail(group, raw, pending, "5.4.6", f"mail loop: more than {MAX_RECEIVED} Received headers")
                continue
            ready.append((group, raw))
        if not ready:
            return
        try:
            destination = transport.find(rows[0].domain, self.mta, self.resolver, sts=self.sts)
        except DeliveryError as e:
            for group, raw in ready:
                self._attempt_failed(group, raw, pending, e)
            return
        connection = Connection(destination, self.hostname, self.timeouts, self.contexts)
        with self._lock:
            self._connections.add(connection)
        try:
            try:
                connection.open()
            except DeliveryError as e:
                for group, raw in ready:
                    self._attempt_failed(group, raw, pending, e)
                return
            for index, (group, raw) in enumerate(ready):
                if self._stopping.is_set():
                    return  # left 'delivering': made due again at the next start
                try:
                    results = connection.send(self._outgoing(group, raw))
                except DeliveryError as e:
                    for later, later_raw in ready[index:]:
                        self._attempt_failed(later, later_raw, pending, e)
                    return
                self._record(group, raw, results, connection, pending)
        finally:
            connection.close()
            self._forget(connection)

    def _forget(self, connection: Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _outgoing(self, group: list[QueueRow], raw: bytes) -> Outgoing:
        sender = group[0].sender
        domain = author_domain(raw)
        if not (domain and self.store.is_local_domain(domain)):
            domain = sender.rpartition("@")[2].lower() if sender else ""
        if domain and self.store.is_local_domain(domain):
            raw = self.signer.sign(raw, domain)
        if sender and not self.store.is_local_domain(sender.rpartition("@")[2]):
            # Forwarded mail: our server now sends for a foreign domain (SRS keeps SPF happy).
            sender = self.srs.forward(sender)
        params = [json.loads(r.dsn or "{}") for r in group]
        return Outgoing(sender=sender, recipients=tuple(r.recipient for r in group), dsn=tuple(params), data=raw,
                        ret=params[0].get("ret"), envid=params[0].get("envid"))

    # -- outcomes ----------------------------------------------------------------------

    def _record(self, group: list[QueueRow], raw: bytes, results: list[Result], connection: Connection,
                pending: dict[int, QueueRow]) -> None:
        """One message's per-recipient results, and its DSNs, in one transaction."""
        now = time.time()
        remote = connection.hop.host if connection.hop else ""
        outcomes, statuses = [], []
        by_recipient = {r.recipient: r for r in results}
        for row in group:
            result = by_recipient[row.recipient]
            params = json.loads(row.dsn or "{}")
            orcpt = tuple(params["orcpt"]) if params.get("orcpt") else None
            if result.ok:
                log.info("queue %d: delivered to <%s> via %s: %s", row.id, row.recipient, remote, result.text)
                outcomes.append(QueueOutcome(row.id, "delivered", result.text))
                if not connection.supports_dsn and dsn.wanted(params, dsn.RELAYED):
                    statuses.append(dsn.RecipientStatus(row.recipient, dsn.RELAYED, result.status,
                                                        "smtp; " + result.text, remote, orcpt))
            elif result.permanent:
                log.info("queue %d: <%s> refused by %s: %s", row.id, row.recipient, remote, result.text)
                outcomes.append(QueueOutcome(row.id, "failed", result.text))
                if dsn.wanted(params, dsn.FAILED):
                    statuses.append(dsn.RecipientStatus(row.recipient, dsn.FAILED, result.status,
                                                        "smtp; " + result.text, remote, orcpt))
            else:
                outcome, status = self._deferral(row, params, result.status, result.text, now, remote)
                outcomes.append(outcome)
                if status:
                    statuses.append(status)
        self._finish(group, raw, outcomes, statuses, pending)

    def _attempt_failed(self, group: list[QueueRow], raw: bytes, pending: dict[int, QueueRow],
                        error: DeliveryError) -> None:
        """A failure before any recipient was answered (DNS, connection, TLS, lost session)."""
        if error.permanent:
            self._fail(group, raw, pending, error.status, error.text)
            return
        log.info("queue: %s: %s", ", ".join(f"{r.id} <{r.recipient}>" for r in group), error.text)
        now = time.time()
        outcomes, statuses = [], []
        for row in group:
            outcome, status = self._deferral(row, json.loads(row.dsn or "{}"), error.status, error.text, now, "")
            outcomes.append(outcome)
            if status:
                statuses.append(status)
        self._finish(group, raw, outcomes, statuses, pending)

    def _deferral(self, row: QueueRow, params: dict, status: str, text: str, now: float,
                  remote: str) -> tuple[QueueOutcome, dsn.RecipientStatus | None]:
        """A temporary failure: retry later, bounce when too old, warn once when late."""
        orcpt = tuple(params["orcpt"]) if params.get("orcpt") else None
        expires = row.created + self.mta.max_queue_time
        if now >= expires:
            log.info("queue %d: <%s> gave up after %d attempts: %s", row.id, row.recipient, row.attempts + 1, text)
            status_line = dsn.RecipientStatus(row.recipient, dsn.FAILED, "4.4.7",
                                              f"{text} (gave up: the message was queued too long)", remote, orcpt)
            return QueueOutcome(row.id, "failed", text), status_line if dsn.wanted(params, dsn.FAILED) else None
        warn = (self.mta.delay_warning > 0 and not row.warned and now - row.created >= self.mta.delay_warning
                and bool(row.sender) and dsn.wanted(params, dsn.DELAYED))
        outcome = QueueOutcome(row.id, "deferred", text, now + retry_delay(self.intervals, row.attempts), warn)
        if not warn:
            return outcome, None
        return outcome, dsn.RecipientStatus(row.recipient, dsn.DELAYED, status, text, remote, orcpt, expires)

    def _fail(self, group: list[QueueRow], raw: bytes, pending: dict[int, QueueRow], status: str, text: str) -> None:
        log.info("queue: %s bounced: %s", ", ".join(f"{r.id} <{r.recipient}>" for r in group), text)
        outcomes, statuses = [], []
        for row in group:
            params = json.loads(row.dsn or "{}")
            outcomes.append(QueueOutcome(row.id, "failed", text))
            if dsn.wanted(params, dsn.FAILED):
                orcpt = tuple(params["orcpt"]) if params.get("orcpt") else None
                statuses.append(dsn.RecipientStatus(row.recipient, dsn.FAILED, status, text, "", orcpt))
        self._finish(group, raw, outcomes, statuses, pending)

    def _defer_all(self, rows: list[QueueRow], error: DeliveryError) -> None:
        now = time.time()
        self.store.finish_queue([QueueOutcome(r.id, "deferred", error.text, now + retry_delay(self.intervals, r.attempts))
                                 for r in rows])

    def _finish(self, group: list[QueueRow], raw: bytes, outcomes: list[QueueOutcome],
                statuses: list[dsn.RecipientStatus], pending: dict[int, QueueRow]) -> None:
        notices = notices_for(self.store, self.hostname, group[0], raw, statuses)
        self.store.finish_queue(outcomes, notices)
        for o in outcomes:
            pending.pop(o.id, None)


def notices_for(store, hostname: str, row: QueueRow, raw: bytes, statuses: list[dsn.RecipientStatus]) -> list[Notice]:
    """The DSNs (one per kind of action) for one message's sender, addressed for delivery."""
    if not statuses:
        return []
    sender = row.sender
    if not sender:
        log.info("queue %d: no DSN for a message with a null sender (never a bounce for a bounce)", row.id)
        return []
    params = json.loads(row.dsn or "{}")
    notices = []
    for action in (dsn.FAILED, dsn.DELAYED, dsn.RELAYED):
        same = [s for s in statuses if s.action == action]
        if not same:
            continue
        report = dsn.build(hostname, sender, raw, same, row.created, params.get("ret"), params.get("envid"))
        notice = address_notice(store, sender, report)
        if notice is not None:
            notices.append(notice)
    return notices


def address_notice(store, sender: str, report: bytes) -> Notice | None:
    """Deliver a DSN to a local sender's INBOX, or queue it (null sender) for a remote one."""
    domain = sender.rpartition("@")[2]
    if not store.is_local_domain(domain):
        return Notice(report, queue=(QueueEntry("", sender),))
    resolution = store.resolve(sender)
    if resolution is None:
        log.info("queue: DSN for <%s> dropped: no such local address", sender)
        return None
    return Notice(report, tuple(Delivery(u.id) for u in resolution.users),
                  tuple(QueueEntry("", t) for t in resolution.external))


def bounce_entries(store, hostname: str, ids, reason: str = "bounced by the postmaster") -> int:
    """Return queued (or held) entries to their senders now, with a failure DSN (5.0.0).

    Entries a runner is delivering at this moment are left alone. Returns how many bounced.
    """
    bounced = 0
    for row in store.claim_queue(ids, held_too=True):
        raw = strip_return_path(store.get_raw(row.blob_id))
        params = json.loads(row.dsn or "{}")
        orcpt = tuple(params["orcpt"]) if params.get("orcpt") else None
        statuses = [dsn.RecipientStatus(row.recipient, dsn.FAILED, "5.0.0", reason, "", orcpt)] \
            if dsn.wanted(params, dsn.FAILED) else []
        store.finish_queue([QueueOutcome(row.id, "failed", reason)], notices_for(store, hostname, row, raw, statuses))
        log.info("queue %d: <%s> %s", row.id, row.recipient, reason)
        bounced += 1
    return bounced
