"""The pipeline: run the configured filters over one message, then write the result.

``Mda.deliver`` is called by ``appliance.mta.router.accept`` while the SMTP client waits
after DATA. A filter that may wait on another host (clamd, spamd, DNS) runs on a pooled
worker thread, so that the session waits for it no longer than ``time_budget``; one that
only computes and uses the store (``Filter.runs_locally``) runs in the session's own
thread, sparing two thread wake-ups per message. If a filter raises, its verdicts are
dropped and the others go on; if the budget runs out, the message goes to every
recipient's INBOX as it came (fail safe: a filter never loses mail). Everything that
follows from the verdicts — each recipient's copy, notices, a quarantine row — is
written in one store transaction before the caller answers 250.

Mail we forward (an alias of ours with outside targets, a Sieve redirect) leaves with our
Authentication-Results and an ARC set (RFC 8617) when we verified it, so the next hop
can trust what we saw although forwarding broke SPF. Mail forwarded only, with no local
recipient, passes the auth filter alone for that.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib
import itertools
import logging
import time

from appliance import mime
from appliance.mda import outbound, receipts
from appliance.mda.errors import Refused
from appliance.mda.filter import ACCEPT, Check, Filter, Incoming, Outcome, UserOutcome, Verdict, headers_text
from appliance.mda.trainer import Trainer
from appliance.mta import dkim
from appliance.store import Delivery, DeliveryResult, Notice, QueueEntry, User

log = logging.getLogger("kotakpos.mda")

WORKERS = 64  # messages filtered at once; SMTP sessions past it wait within their time budget


# filter name in config -> (module, class); imported only when configured
FILTERS = {
    "greylist": ("appliance.mda.greylist", "GreylistFilter"),
    "virus": ("appliance.mda.virus", "VirusFilter"),
    "auth": ("appliance.mda.auth", "AuthFilter"),
    "spam": ("appliance.mda.spam", "SpamFilter"),
    "rules": ("appliance.mda.rules", "RulesFilter"),
    "receipts": ("appliance.mda.receipts", "ReceiptsFilter"),
}


@functools.lru_cache(maxsize=None)
def hooks_of(check_class: type) -> tuple[tuple[str, ...], bool]:
    """The message-wide hooks a Check class overrides, in order, and whether it overrides
    check_rcpt: the base class's hooks accept and change nothing, so they are not called."""
    message_hooks = tuple(name for name in ("check_connection", "check_sender", "check_body")
                          if getattr(check_class, name) is not getattr(Check, name))
    return message_hooks, check_class.check_rcpt is not Check.check_rcpt


def build_filters(ctx) -> list[Filter]:
    """The configured filters, in order."""
    unknown = [name for name in ctx.config.mda.filters if name not in FILTERS]
    if unknown:
        raise ValueError(f"unknown MDA filter(s) {unknown}; known: {sorted(FILTERS)}")
    filters = []
    for name in ctx.config.mda.filters:
        module, cls = FILTERS[name]
        filters.append(getattr(importlib.import_module(module), cls)(ctx))
    return filters


class Mda:
    """The MDA of one server: its filters and the delivery of filtered mail."""

    def __init__(self, ctx, filters: list[Filter] | None = None):
        self.ctx = ctx
        self.filters = build_filters(ctx) if filters is None else filters
        self.verifiers = [f for f in self.filters if f.name == "auth"]  # what mail forwarded only passes
        self.sealer = dkim.Signer(ctx.store)
        self.trainer = Trainer(ctx, on_seen=self._each("on_seen"), on_arrival=self._each("on_arrival"))
        self._workers = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="mda-filters")

    def start(self, train: bool = True) -> None:
        """Start listening to store events (Bayes training, receipts). ``train=False``: another
        worker process trains, once for the commits of every worker (it hears them all)."""
        if train:
            self.trainer.start()
        else:
            self.trainer.stop()

    def close(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)
        self.trainer.stop()
        for f in self.filters:
            f.close()

    def _each(self, hook: str):
        """A callable that runs ``hook`` of every filter that has one (store-event hooks)."""
        def run(*args) -> None:
            for f in self.filters:
                method = getattr(f, hook, None)
                if method is not None:
                    method(*args)
        return run

    # -- running the filters -------------------------------------------------------------

    def run(self, msg: Incoming, filters: list[Filter] | None = None) -> Outcome | None:
        """The combined outcome of ``filters`` (all configured ones by default), or None
        when the time budget ran out.

        Filters that run locally are called here; each stretch of others runs on a pooled
        worker, so that a hanging one cannot hold the SMTP session past the budget. When
        hung filters occupy every worker, new messages wait for one, run out of budget and
        go to INBOX unfiltered: never lost, never stuck.
        """
        deadline = time.monotonic() + self.ctx.config.mda.time_budget
        outcome = Outcome(per_user={u.id: UserOutcome() for u in msg.users})
        for local, stretch in itertools.groupby(self.filters if filters is None else filters,
                                                key=lambda f: f.runs_locally):
            if outcome.decided:
                break
            if local:
                self._run_stretch(list(stretch), msg, outcome)
                continue
            future = self._workers.submit(self._run_stretch, list(stretch), msg, outcome)
            try:
                future.result(max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                future.cancel()  # not started yet: it never will
                return None
        return outcome

    def _run_stretch(self, filters: list[Filter], msg: Incoming, outcome: Outcome) -> None:
        for f in filters:
            if outcome.decided:
                return
            self._run_one(f, msg, outcome)

    def _run_one(self, f: Filter, msg: Incoming, outcome: Outcome) -> None:
        check = None
        try:
            check = f.check(msg)
            message_hooks, per_user = hooks_of(type(check))
            for hook in message_hooks:
                verdict = getattr(check, hook)()
                if verdict is ACCEPT:
                    continue
                self._merge(outcome, verdict, msg)
                if outcome.decided:
                    return
            if not per_user:
                return
            for user in msg.users:
                mine = outcome.per_user[user.id]
                if not mine.discard:
                    verdict = check.check_rcpt(user)
                    if verdict is not ACCEPT:
                        self._merge_user(outcome, mine, verdict)
        except Exception:
            self.ctx.count("mda.filter_error")
            log.exception("filter %s failed on %s; its verdicts are ignored", f.name, msg.envelope.message_id)
        finally:
            if check is not None:
                try:
                    check.close()
                except Exception:
                    log.exception("filter %s: close failed", f.name)

    @staticmethod
    def _merge(outcome: Outcome, v: Verdict, msg: Incoming) -> None:
        if v.reason:
            outcome.reasons.append(v.reason)
        if v.reject:
            outcome.reject = v.reject
        elif v.quarantine:
            outcome.quarantine = v.reason or "quarantined"
        elif v.discard:
            outcome.discard = True
        outcome.headers.extend(v.add_headers)
        msg.added.extend(v.add_headers)
        outcome.notices.extend(v.notices)

    @staticmethod
    def _merge_user(outcome: Outcome, mine: UserOutcome, v: Verdict) -> None:
        if v.reason:
            mine.reasons.append(v.reason)
        mine.headers.extend(v.add_headers)
        if v.folders:
            mine.folders = v.folders  # a later filter (the user's own rules) overrides an earlier one
            mine.create = v.create
        mine.flags = tuple(dict.fromkeys(mine.flags + v.flags))
        mine.redirect += v.redirect
        mine.discard = mine.discard or v.discard or bool(v.reject)
        mine.reject = mine.reject or v.reject
        outcome.notices.extend(v.notices)

    # -- delivering ------------------------------------------------------------------------

    def deliver(self, envelope, raw: bytes, users: list[User], queue: list[QueueEntry], *,
                crlf_checked: bool = False, notices: list[Notice] = ()) -> DeliveryResult:
        """Filter and store one message for local ``users`` and queue it for ``queue``.

        ``raw`` is the message as received with our trace header, without Return-Path;
        ``crlf_checked``: every line of it is known to end in CRLF. ``notices`` (the router's
        DSNs for recipients left out) are written with the copies, unless the message is
        refused, quarantined or discarded.
        Mail with no local recipient passes no filter (it only gets its ledger rows), but
        mail an alias of ours forwards is verified, to be sealed with ARC.
        Raises Refused (the client gets the filter's 5xx) for a refused message.
        Returns once everything is durable.
        """
        ctx = self.ctx
        sent = self._ledger_rows(envelope, raw)
        # Our own users' mail is DKIM-signed when it leaves, not sealed.
        forwarder = "" if envelope.authenticated_as else _forwarding_domain(envelope)
        if not users and not (forwarder and self.verifiers):
            return self._write([Notice(raw, queue=tuple(queue)), *notices], sent=sent)
        return_path = b"Return-Path: <" + envelope.sender.encode("utf-8", "surrogateescape") + b">\r\n"
        auth = getattr(ctx, "auth", None)
        trusted = bool(auth and envelope.client_ip and auth.trusted.contains(envelope.client_ip))
        msg = Incoming(envelope, raw, users, ctx.hostname, trusted, crlf_checked=crlf_checked)
        msg.notes["sent_receipts"] = sent
        outcome = self.run(msg, None if users else self.verifiers)
        if outcome is None:
            ctx.count("mda.timeout")
            log.error("filters took longer than %.1fs on %s: delivered unfiltered to INBOX",
                      ctx.config.mda.time_budget, envelope.message_id)
            return self._write([Notice(return_path + msg.raw, tuple(Delivery(u.id) for u in users), tuple(queue)),
                                *notices], sent=sent, known=msg)
        reasons = "; ".join(outcome.reasons) or "-"
        if not outcome.reject and not queue and outcome.per_user and all(o.reject for o in outcome.per_user.values()):
            # every recipient's rules refused it (Sieve reject): refuse in SMTP, no bounce later
            outcome.reject = next(iter(outcome.per_user.values())).reject
        if outcome.reject:
            code, status, text = outcome.reject
            ctx.count("mda.reject")
            log.info("mda %s: rejected from=<%s> (%d %s): %s", envelope.message_id, envelope.sender, code, status, reasons)
            raise Refused(code, status, text, f"filter refused {envelope.message_id}: {reasons}")

        copies: list[Notice] = []
        quarantine = None
        if outcome.quarantine:
            quarantine = (return_path + msg.raw, envelope.sender, [u.address for u in users], outcome.quarantine)
            ctx.count("mda.quarantine")
            log.info("mda %s: quarantined from=<%s>: %s", envelope.message_id, envelope.sender, reasons)
        elif outcome.discard:
            ctx.count("mda.discard")
            log.info("mda %s: discarded from=<%s>: %s", envelope.message_id, envelope.sender, reasons)
        else:
            copies = self._copies(msg, outcome, return_path)
            fates = [self._fate(outcome.per_user[u.id]) for u in users]
            if users and (any(fate != "INBOX" for fate in fates) or not _as_addressed(envelope, users)):
                # The SMTP server's line for the message names its recipients: this one
                # says only what that line does not (a folder, a reason, an alias's members).
                log.info("mda %s: from=<%s> %s", envelope.message_id, envelope.sender,
                         "; ".join(f"{u.address}: {fate}" for u, fate in zip(users, fates)))
        if queue:
            # Remote recipients and forwarding targets of the same message are relayed as
            # received (sealed, when forwarded): the verdicts, quarantine and discard included,
            # are for local mailboxes.
            copies.append(Notice(return_path + self._sent_on(msg, forwarder), queue=tuple(queue)))
        extra = [*outcome.notices, *notices] if not (outcome.quarantine or outcome.discard) else []
        return self._write(copies + extra, quarantine, msg.notes.get("requested", ()), sent, known=msg)

    def _write(self, copies: list[Notice], quarantine=None, requested=(), sent=(),
               known: Incoming | None = None) -> DeliveryResult:
        """One store transaction for everything; plain ``deliver`` when every recipient gets
        the same bytes and nothing else is written (the common case). ``known``: the message
        the copies were made from, whose analysis and header fields the store reuses instead
        of parsing again."""
        base = (known.raw, known.info, known.fields) if known is not None else None
        same = all(c.raw == copies[0].raw for c in copies[1:])  # compared, not hashed: no pass over one copy
        if copies and same and not (quarantine or requested or sent):
            return self.ctx.store.deliver(copies[0].raw, [d for c in copies for d in c.deliveries],
                                          [q for c in copies for q in c.queue], known=base)
        return self.ctx.store.deliver_filtered(copies, quarantine, requested, sent, known=base)

    def _ledger_rows(self, envelope, raw: bytes) -> list[dict]:
        """Receipt-ledger rows when a local user's message asks for receipts (cheap test first)."""
        head = raw[:mime.header_end(raw)]
        asks = any(r.notify and "SUCCESS" in r.notify for r in envelope.recipients) or \
            b"disposition-notification-to" in head.lower()
        if not asks:
            return []
        return receipts.sent_rows(self.ctx.store, envelope, mime.headers.first_values(mime.header_fields(head)))

    @staticmethod
    def _fate(mine: UserOutcome) -> str:
        """One recipient's verdict for the log: where the copy went, and why."""
        where = "discarded" if mine.discard else ",".join(mine.folders or ("INBOX",))
        if mine.redirect:
            where += " +redirect " + ",".join(mine.redirect)
        return where + (f" ({'; '.join(mine.reasons)})" if mine.reasons else "")

    def _copies(self, msg: Incoming, outcome: Outcome, return_path: bytes) -> list[Notice]:
        """One copy per distinct header set; recipients with equal headers share one blob."""
        by_headers: dict[tuple, list[Delivery]] = {}
        redirects: list[str] = []
        redirected_by = ""  # the domain of the first user whose rules redirect: it seals the copy
        for user in msg.users:
            mine = outcome.per_user[user.id]
            redirects += mine.redirect
            if mine.redirect and not redirected_by:
                redirected_by = user.address.rpartition("@")[2]
            if mine.discard:
                self.ctx.count("mda.discard")
                continue
            headers = tuple(outcome.headers + mine.headers)
            folders = mine.folders or ("INBOX",)
            for folder in folders:
                by_headers.setdefault(headers, []).append(Delivery(user.id, folder, mine.flags, folder in mine.create))
            self.ctx.count("mda.junk" if "Junk" in folders else "mda.accept")
        copies = [Notice(return_path + headers_text(h) + msg.raw, tuple(d)) for h, d in by_headers.items()]
        if redirects:
            # RFC 5228 §4.2: the redirected message goes on unchanged (but for the trace
            # fields of our verification), from its envelope sender.
            sent_on = outbound.notice(self.ctx.store, msg.sender, self._sent_on(msg, redirected_by),
                                      dict.fromkeys(redirects))
            if sent_on is not None:
                copies.append(sent_on)
        return copies

    def _sent_on(self, msg: Incoming, forwarder: str) -> bytes:
        """``msg`` as we forward it for an address of domain ``forwarder``: with our
        Authentication-Results and an ARC set sealed for that domain (RFC 8617 §5.1) when we
        verified it; as received when it is our own users' mail, we did not check it, or the
        domain has no keys."""
        results = [v for n, v in msg.added if n.lower() == "authentication-results"]
        if msg.internal or not results or not forwarder:
            return msg.raw
        ours = headers_text([("Authentication-Results", results[0])])
        arc_set = self.sealer.seal(ours + msg.raw, forwarder, self.ctx.hostname)
        if not arc_set:
            return msg.raw
        log.info("mda %s: forwarded with an ARC set sealed for %s", msg.envelope.message_id, forwarder)
        return arc_set + ours + msg.raw


def _as_addressed(envelope, users: list[User]) -> bool:
    """The local users are exactly the recipients the client named (no alias between)."""
    named = {r.route.address.lower() for r in envelope.recipients}
    return len(named) == len(users) and all(u.address.lower() in named for u in users)


def _forwarding_domain(envelope) -> str:
    """The domain of the first recipient address of ours that leads to other addresses
    (an alias with outside targets; an SRS address leading back to a sender), else ""."""
    for r in envelope.recipients:
        if any(target.lower() != r.route.address.lower() for target in r.route.external):
            return r.route.address.rpartition("@")[2].lower()
    return ""

