"""The admin API: everything an administrator can see and do, as plain Python calls.

The CLI and the TUI use exactly this API — in-process (``kotakpos serve --tui``, or the
CLI when no server runs) or through ``AdminClient`` over the Unix socket. Every method
takes and returns JSON-friendly values. Methods that need a running server (sessions,
listeners) raise ``AdminError`` when the API only wraps a store.
"""

from __future__ import annotations

import collections
import logging
import re
import shutil
import threading
import time

from appliance import __version__
from appliance.mime import MessageInfo
from appliance.store import AccountsChanged, MailboxChanged, Overflowed, QuarantineChanged, QueueChanged, Store, StoreError
from appliance.store.events import EventBus
from appliance.admin.filters import FiltersAdmin
from appliance.admin.logtail import LogRing

TRAFFIC_MINUTES = 60   # how much per-minute history ``traffic()`` keeps
# Seconds the live-event pump collects store events after the first: under load it then wakes
# ten times a second at most, not once for every commit, and live views lag by at most this much.
GATHER = 0.1


class AdminError(Exception):
    """A refused admin operation; the message is fit to show as is."""


def _event_dict(event) -> dict:
    if isinstance(event, MailboxChanged):
        return {"type": "mailbox", "kind": event.kind, "user_id": event.user_id, "mailbox_id": event.mailbox_id,
                "count": len(event.uids)}
    if isinstance(event, QueueChanged):
        return {"type": "queue", "kind": event.kind, "ids": list(event.ids)}
    if isinstance(event, QuarantineChanged):
        return {"type": "quarantine", "kind": event.kind, "ids": list(event.ids)}
    if isinstance(event, AccountsChanged):
        return {"type": "accounts", "kind": event.kind, "name": event.name}
    if isinstance(event, Overflowed):
        return {"type": "overflow"}
    return event if isinstance(event, dict) else {"type": "other", "repr": repr(event)}


def traffic_of(event: dict) -> tuple[int, int]:
    """(messages in, messages out) that one admin event stands for.

    In: a message stored into a mailbox, or a recipient queued for relay. Out: a relay
    recipient delivered or bounced. The TUI counts live events with this same rule, so
    its sparklines continue the history ``traffic()`` returned.
    """
    if event.get("type") == "mailbox" and event.get("kind") == "exists":
        return event.get("count", 0), 0
    if event.get("type") == "queue":
        if event.get("kind") == "queued":
            return len(event.get("ids", ())), 0
        if event.get("kind") in ("delivered", "bounced"):
            return 0, len(event.get("ids", ()))
    return 0, 0


class AdminAPI(FiltersAdmin):
    # The methods the socket exposes (and AdminClient mirrors).
    PUBLIC = frozenset({
        "version", "status", "listeners", "sessions", "kick", "blocked", "block", "unblock",
        "domains", "add_domain", "delete_domain", "users", "add_user", "delete_user", "set_password", "set_quota",
        "aliases", "add_alias", "delete_alias", "mailboxes", "messages", "message", "delete_message",
        "queue", "queue_entry", "queue_ids", "queue_retry", "queue_hold", "queue_release", "queue_delete", "queue_bounce",
        "dns_records", "dkim_records", "notify",
        "traffic", "log_tail", "workers",
    })
    PUBLIC = PUBLIC | FiltersAdmin.FILTERS_PUBLIC  # quarantine, rules, receipts (admin/filters.py)

    def __init__(self, server=None, store: Store | None = None):
        self.server = server
        self.store: Store = store if store is not None else server.ctx.store
        self._bus = EventBus()
        self._store_sub = self.store.subscribe()
        self._closed = threading.Event()
        self._traffic: collections.OrderedDict[int, list[int]] = collections.OrderedDict()  # minute -> [in, out]
        self._traffic_lock = threading.Lock()
        self._log_ring: LogRing | None = None
        self._pump = threading.Thread(target=self._forward_store_events, name="admin-events", daemon=True)
        self._pump.start()
        self._unsubscribe_registry = None
        if server is not None:
            self._unsubscribe_registry = server.ctx.registry.on_change(self._session_changed)
            self._log_ring = LogRing(lambda line: self._bus.publish([line]))
            logging.getLogger("kotakpos").addHandler(self._log_ring)

    def _session_changed(self, kind: str, info) -> None:
        # Fires as every session opens, runs a command and closes: build nothing when nobody listens.
        if not self._bus._subscribers:
            return
        self._bus.publish([{"type": "session", "kind": kind, "session": info.to_dict()}])

    def _forward_store_events(self) -> None:
        while not self._closed.is_set():
            self._forward_burst()

    def _forward_burst(self) -> None:
        """Wait up to half a second for an event, gather what follows it, forward them all
        (Subscription.burst says why a function of its own)."""
        events = self._store_sub.burst(0.5)
        if not events:
            return
        self._closed.wait(GATHER)
        events = [_event_dict(e) for e in events + self._store_sub.drain()]
        self._count_traffic(events)
        self._bus.publish(events)

    def _count_traffic(self, events: list[dict]) -> None:
        minute = int(time.time() // 60)
        with self._traffic_lock:
            for event in events:
                n_in, n_out = traffic_of(event)
                if n_in or n_out:
                    bucket = self._traffic.setdefault(minute, [0, 0])
                    bucket[0] += n_in
                    bucket[1] += n_out
            while self._traffic and next(iter(self._traffic)) <= minute - TRAFFIC_MINUTES:
                self._traffic.popitem(last=False)

    def hear_logs_at(self, path) -> None:
        """Keep the log lines the server's other processes send to ``path`` too (the
        supervisor's and the other workers', ``logtail.LogForwarder``), for ``log_tail`` and
        the live log view."""
        self._log_ring.listen(path)

    def subscribe(self):
        """Live events (sessions opening/closing, mailbox, queue and account changes)."""
        return self._bus.subscribe(None)

    def close(self) -> None:
        self._closed.set()
        self._store_sub.close()
        if self._log_ring is not None:
            logging.getLogger("kotakpos").removeHandler(self._log_ring)
            self._log_ring.close()
        if self._unsubscribe_registry:
            self._unsubscribe_registry()

    def _ctx(self):
        if self.server is None or self.server.ctx is None:
            raise AdminError("no server is running")
        return self.server.ctx

    # -- the server ------------------------------------------------------------------------

    def version(self) -> str:
        return __version__

    def status(self) -> dict:
        """The whole server: every worker process's sessions and counters, summed."""
        ctx = self._ctx()
        sessions = ctx.registry.all()
        by_protocol: dict[str, int] = {}
        for s in sessions:
            by_protocol[s.protocol] = by_protocol.get(s.protocol, 0) + 1
        return {
            "version": __version__,
            "hostname": ctx.hostname,
            "pid": self.server.pid,  # the supervisor's when workers serve: the one to signal
            "uptime": time.time() - self.server.started,  # the supervisor's: a restarted first worker is younger
            "data_dir": str(ctx.data_dir),
            "listeners": self.listeners(),
            "sessions": len(sessions),
            "sessions_by_protocol": by_protocol,
            "counts": self.store.counts(),
            "queue": self.store.queue_stats(),
            "stats": ctx.server_stats(),
            "today": ctx.counts_today(),
            "blocked": len(ctx.auth.blocked_addresses()),
            "tls_expiry": ctx.tls.expiry().isoformat(),
            "tls_acme": self.server.acme.state() if getattr(self.server, "acme", None) else None,
            "disk_free": shutil.disk_usage(ctx.data_dir).free,
        }

    def traffic(self, minutes: int = TRAFFIC_MINUTES) -> dict:
        """Messages in and out per minute, oldest first, ending with the current minute.

        ``{"minute": <unix minute of the last entry>, "in": [...], "out": [...]}``; see
        ``traffic_of`` for what counts. Only since this server started.
        """
        minutes = max(1, min(int(minutes), TRAFFIC_MINUTES))
        now = int(time.time() // 60)
        with self._traffic_lock:
            counts = [self._traffic.get(m, [0, 0]) for m in range(now - minutes + 1, now + 1)]
        return {"minute": now, "in": [c[0] for c in counts], "out": [c[1] for c in counts]}

    def log_tail(self, limit: int = 500) -> list[dict]:
        """The server's newest log lines (time, level, name, pid, message), oldest first:
        every process's, with ``[server] workers``."""
        if self._log_ring is None:
            raise AdminError("no server is running")
        return self._log_ring.tail(int(limit))

    def listeners(self) -> list[dict]:
        self._ctx()
        return [{"name": l.name, "addresses": [f"{h}:{p}" for h, p in l.addresses], "implicit_tls": l.implicit_tls,
                 "state": "listening"} for l in self.server.connections.listeners]

    def workers(self, sessions: bool = True) -> list[dict]:
        """The server's processes (one, or each worker of ``[server] workers``), in worker order.

        Each: ``index``, ``pid``, ``started`` (unix time), ``sessions`` (a count),
        ``sessions_by_protocol``, ``session_list`` (theirs, as ``sessions()`` gives them),
        ``cpu_seconds`` (since it started), ``rss`` and ``pss`` (bytes; PSS divides shared
        pages among the processes, so the workers' PSS adds up), ``restarts`` (how often the
        supervisor started this worker again) and ``last_exit`` (how the one before it ended:
        ``reason`` such as "killed by signal 9 (SIGKILL)", ``signal`` or ``status``, ``at``;
        None if none did). A worker that did not answer in time has its index only.
        ``sessions=False`` leaves ``session_list`` out (the dashboard asks every few seconds).
        """
        if self.server is None or self.server.ctx is None:
            raise AdminError("no server is running")
        workers = self.server.workers()
        if not sessions:
            for w in workers:
                w.pop("session_list", None)
        return workers

    def sessions(self) -> list[dict]:
        """Every session of every worker process (``pid`` says which serves it)."""
        return [s.to_dict() for s in self._ctx().registry.all()]

    def kick(self, session_id: int) -> bool:
        """Disconnect a session, whichever worker process serves it (returns once it is gone)."""
        if not self._ctx().registry.kick(int(session_id)):
            raise AdminError(f"no session {session_id}")
        return True

    def blocked(self) -> list[dict]:
        return self._ctx().auth.failing_addresses()

    def block(self, ip: str, seconds: float = 3600) -> bool:
        self._ctx().auth.block(ip, float(seconds))
        return True

    def unblock(self, ip: str) -> bool:
        if not self._ctx().auth.unblock(ip):
            raise AdminError(f"{ip} is not blocked")
        return True

    # -- accounts --------------------------------------------------------------------------

    def domains(self) -> list[str]:
        return self.store.list_domains()

    def add_domain(self, name: str) -> str:
        """Add a mail domain and make its DKIM keys (``dns_records`` shows what to publish)."""
        from appliance.mta import dkim
        added = self._store_call(self.store.add_domain, name)
        dkim.ensure_keys(self.store, added)
        return added

    def dns_records(self, domain: str, hostname: str | None = None) -> list[dict]:
        """The DNS records to publish for a local domain: MX, SPF, DKIM, DMARC, then optional
        extras (TLS-RPT, MTA-STS, client auto-setup). Makes the DKIM keys if the domain has none yet.

        ``hostname`` is this server's name (the running server's when omitted).
        """
        from appliance.mta import dkim
        if not self.store.is_local_domain(domain):
            raise AdminError(f"{domain} is not a local domain")
        domain = domain.lower().rstrip(".")
        if hostname is None:
            hostname = self._ctx().hostname
        dkim.ensure_keys(self.store, domain)
        records = [
            {"name": domain, "type": "MX", "value": f"10 {hostname}.", "optional": False},
            {"name": domain, "type": "TXT", "value": "v=spf1 mx ~all", "optional": False},
        ]
        records += [{"name": name, "type": "TXT", "value": value, "optional": False}
                    for name, value in dkim.public_records(self.store, domain)]
        records += [
            {"name": f"_dmarc.{domain}", "type": "TXT",
             "value": f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}", "optional": False},
            {"name": f"_smtp._tls.{domain}", "type": "TXT",
             "value": f"v=TLSRPTv1; rua=mailto:postmaster@{domain}", "optional": True},
            # RFC 8461: the policy itself must be served at https://mta-sts.<domain>/.well-known/mta-sts.txt
            {"name": f"_mta-sts.{domain}", "type": "TXT", "value": f"v=STSv1; id={time.strftime('%Y%m%d')}01",
             "optional": True},
        ]
        # Client auto-setup (RFC 6186 SRV; autoconfig, autodiscover and mta-sts names for the web listener).
        from appliance.config.schema import PortsSection
        from appliance.web.records import client_setup_records
        ports = self.server.config.ports if self.server is not None else PortsSection()
        records += client_setup_records(domain, hostname, ports.__dict__)
        return records

    def notify(self) -> bool:
        """Another process committed to the store file (``kotakpos import``/``restore --user``
        write it directly): publish its changes now, as the server's own. Returns once done,
        so the caller's next IMAP or POP3 session already sees them (on every worker)."""
        if self.server is not None and self.server.ctx is not None:
            self.server.catch_up()
        else:
            self.store.catch_up()
        return True

    def dkim_records(self, domain: str) -> list[list[str]]:
        """(DNS name, TXT value) of the domain's DKIM keys as they are, without making any."""
        from appliance.mta import dkim
        return [[name, value] for name, value in dkim.public_records(self.store, domain)]

    def delete_domain(self, name: str) -> bool:
        self._store_call(self.store.delete_domain, name)
        return True

    def users(self) -> list[dict]:
        return [{"address": u.address, "quota": u.quota, "used": used, "created": u.created}
                for u, used in self.store.list_users()]

    def add_user(self, address: str, password: str, quota: int = 0) -> dict:
        user = self._store_call(self.store.add_user, address, password, int(quota))
        return {"address": user.address, "quota": user.quota}

    def delete_user(self, address: str) -> bool:
        self._store_call(self.store.delete_user, address)
        return True

    def set_password(self, address: str, password: str) -> bool:
        self._store_call(self.store.set_password, address, password)
        return True

    def set_quota(self, address: str, quota: int) -> bool:
        self._store_call(self.store.set_quota, address, int(quota))
        return True

    def aliases(self) -> dict[str, list[str]]:
        return self.store.list_aliases()

    def add_alias(self, alias: str, targets: list[str]) -> bool:
        self._store_call(self.store.add_alias, alias, list(targets))
        return True

    def delete_alias(self, alias: str, targets: list[str] | None = None) -> bool:
        self._store_call(self.store.delete_alias, alias, list(targets) if targets else None)
        return True

    # -- mailboxes ---------------------------------------------------------------------------

    def _user(self, address: str):
        user = self.store.get_user(address)
        if user is None:
            raise AdminError(f"no user {address}")
        return user

    def _mailbox(self, address: str, name: str):
        user = self._user(address)
        mailbox = self.store.get_mailbox(user.id, name)
        if mailbox is None:
            raise AdminError(f"{address} has no mailbox {name}")
        return user, mailbox

    def mailboxes(self, address: str) -> list[dict]:
        user = self._user(address)
        result = []
        for mb in self.store.list_mailboxes(user.id):
            st = self.store.mailbox_status(mb.id)
            result.append({"name": mb.name, "special_use": mb.special_use, "messages": st.messages,
                           "unseen": st.unseen, "size": st.size})
        return result

    def messages(self, address: str, mailbox: str, limit: int = 500, offset: int = 0) -> list[dict]:
        """Newest first: from, subject, date, size, flags."""
        _, mb = self._mailbox(address, mailbox)
        rows = list(reversed(self.store.list_messages(mb.id)))[int(offset):int(offset) + int(limit)]
        parsed = self.store.get_parsed(r.blob_id for r in rows)
        result = []
        for r in rows:
            info = MessageInfo.from_json(parsed[r.blob_id].info_json) if r.blob_id in parsed else None
            result.append({"uid": r.uid, "from": info.from_ if info else "", "subject": info.subject if info else "",
                           "date": r.internaldate, "size": r.size, "flags": sorted(r.flags)})
        return result

    def message(self, address: str, mailbox: str, uid: int) -> str:
        """The message as text (decoded leniently), for reading in the TUI."""
        _, mb = self._mailbox(address, mailbox)
        row = next((r for r in self.store.list_messages(mb.id) if r.uid == int(uid)), None)
        if row is None:
            raise AdminError(f"no message {uid} in {mailbox}")
        return self.store.get_raw(row.blob_id).decode("utf-8", "replace")

    def delete_message(self, address: str, mailbox: str, uid: int) -> bool:
        _, mb = self._mailbox(address, mailbox)
        if not self.store.delete_messages(mb.id, [int(uid)]):
            raise AdminError(f"no message {uid} in {mailbox}")
        return True

    # -- queue -------------------------------------------------------------------------------

    def queue(self, limit: int = 10000) -> list[dict]:
        return [q.__dict__ for q in self.store.list_queue(int(limit))]

    def queue_entry(self, queue_id: int) -> dict:
        return self._store_call(self.store.queue_entry, int(queue_id)).__dict__

    def queue_ids(self, name: str) -> list[int]:
        """The entries ``name`` stands for: a queue id (``queue list``, the log's "queue 12"),
        or the message id of the SMTP reply and the log ("queued as 02783ECB9660A699"),
        which names one entry per remote recipient. [] when nothing in the queue matches."""
        name = str(name).strip()
        if re.fullmatch(r"[0-9A-Fa-f]{16}", name):
            return self.store.queue_ids_of_message(name)
        if not name.isdigit():
            raise AdminError(f"'{name}' is neither a queue id (a number) nor a message id (16 hex digits)")
        try:
            return [self.store.queue_entry(int(name)).id]
        except StoreError:
            return []

    def queue_retry(self, ids: list[int]) -> int:
        return self.store.retry_queue(int(i) for i in ids)

    def queue_hold(self, ids: list[int]) -> int:
        return self.store.hold_queue(int(i) for i in ids)

    def queue_release(self, ids: list[int]) -> int:
        return self.store.release_queue(int(i) for i in ids)

    def queue_delete(self, ids: list[int]) -> int:
        return self.store.delete_queue(int(i) for i in ids)

    def queue_bounce(self, ids: list[int], hostname: str | None = None) -> int:
        """Give up on entries now: each sender gets a failure DSN (5.0.0). Returns how many.

        ``hostname`` names this server in the DSN (the running server's when omitted).
        """
        from appliance.mta.queue import bounce_entries
        return bounce_entries(self.store, hostname or self._ctx().hostname, [int(i) for i in ids])

    @staticmethod
    def _store_call(fn, *args):
        try:
            return fn(*args)
        except StoreError as e:
            raise AdminError(str(e)) from None
