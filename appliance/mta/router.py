"""Routing: which recipients are local, which are relayed, and handing a message over.

The SMTP server asks ``route`` at RCPT time (so an unknown local user is refused with
550 5.1.1 there, never bounced later) and calls ``accept`` once the message is read.
``accept`` is the one place where an accepted message becomes durable: local copies and
relay-queue rows are written in ONE store transaction (``Store.deliver``), so a crash can
neither lose the message nor store it twice.

The relay decision (who may send to remote domains) is the SMTP session's policy; this
module only says where an address leads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

import logging

from appliance.mta import dsn
from appliance.mta.queue import address_notice
from appliance.mta.srs import Srs
from appliance.store import Delivery, DeliveryResult, Notice, QueueEntry, QuotaExceeded, Resolution, Store, User

log = logging.getLogger("kotakpos.mta")


def has_room(store: Store, user: User, size: int) -> bool:
    """Whether ``user``'s quota takes ``size`` more bytes (the quota rule of RCPT and DATA)."""
    if not user.quota:
        return True
    used = store.usage(user.id)
    return used < user.quota and used + size <= user.quota


class Kind(Enum):
    LOCAL = "local"  # a local domain, and the address reaches someone (user, alias, catch-all)
    REMOTE = "remote"  # not one of our domains: relay through the queue
    UNKNOWN = "unknown"  # one of our domains, but nobody by that name


@dataclass(frozen=True)
class Route:
    address: str  # the recipient as routed (domain lower-cased)
    kind: Kind
    users: tuple[User, ...] = ()  # local mailboxes it reaches (after aliases)
    external: tuple[str, ...] = ()  # addresses to relay to: the recipient itself, or forwarding targets


def route(store: Store, recipients: Sequence[str], srs: Srs | None = None, admin_address: str = "") -> list[Route]:
    """Route each recipient address. Aliases, lists and the catch-all are followed by
    ``store.resolve``; a domain that is not ours is remote as a whole. A valid SRS address
    of ours (a bounce to mail we forwarded) leads back to the original sender. Postmaster
    of a local domain that no user or alias names reaches the administrator (``postmaster``)."""
    routes = []
    for address in recipients:
        original = srs.reverse(address) if srs else None
        if original:
            routes.append(Route(address, Kind.LOCAL, external=(original,)))
            continue
        domain = address.rpartition("@")[2]
        if not store.is_local_domain(domain):
            routes.append(Route(address, Kind.REMOTE, external=(address,)))
            continue
        resolution = store.resolve(address)
        if resolution is None and address.rpartition("@")[0].lower() == "postmaster":
            resolution = postmaster(store, admin_address)
        if resolution is None:
            routes.append(Route(address, Kind.UNKNOWN))
        else:
            routes.append(Route(address, Kind.LOCAL, resolution.users, resolution.external))
    return routes


def postmaster(store: Store, admin_address: str) -> Resolution | None:
    """Where postmaster mail goes when no alias says: ``admin_address``, or else the first
    user created. RFC 5321 §4.5.1: every domain a server takes mail for must accept it."""
    if not admin_address:
        first = store.first_user()
        return Resolution(users=(first,), external=()) if first else None
    if store.is_local_domain(admin_address.rpartition("@")[2]):
        return store.resolve(admin_address)
    return Resolution(users=(), external=(admin_address,))


@dataclass(frozen=True)
class Recipient:
    route: Route
    notify: frozenset[str] | None = None  # DSN NOTIFY (RFC 3461 §4.1), None when not given
    orcpt: tuple[str, str] | None = None  # DSN ORCPT (addr-type, address)


@dataclass(frozen=True)
class Envelope:
    """What the SMTP transaction said about one message, beside its bytes."""

    sender: str  # reverse-path; "" is the null sender of bounces
    recipients: tuple[Recipient, ...]
    message_id: str  # our id for this message ("queued as"), also in the Received header
    body: str = "7BIT"  # BODY= of MAIL FROM
    smtputf8: bool = False
    ret: str | None = None  # DSN RET (FULL/HDRS)
    envid: str | None = None  # DSN ENVID
    authenticated_as: str = ""  # the submitting user's address, "" for unauthenticated mail
    client_ip: str = ""  # the SMTP client's address, for the MDA's SPF and blocklist checks
    client_name: str = ""  # its EHLO/HELO name (SPF HELO identity, RFC 7208 §2.3)


def _dsn(envelope: Envelope, r: Recipient) -> dict:
    dsn = {"envid": envelope.envid, "ret": envelope.ret, "message_id": envelope.message_id}
    if r.notify is not None:
        dsn["notify"] = sorted(r.notify)
    if r.orcpt is not None:
        dsn["orcpt"] = list(r.orcpt)
    return {k: v for k, v in dsn.items() if v is not None}


def accept(ctx, envelope: Envelope, raw: bytes, *, crlf_checked: bool = False) -> DeliveryResult:
    """Make an accepted message durable: local mailboxes and relay queue in one transaction.

    ``raw`` is the message as received plus our trace header(s); ``crlf_checked`` says the
    SMTP server saw every line end in CRLF (the MDA then need not look again). Local copies get a
    Return-Path (RFC 5321 §4.4: added at final delivery). Local and queued copies share
    one blob, so a queued copy carries that Return-Path too; the outbound client removes
    a leading Return-Path before relaying (RFC 5321 §4.4: relays must not pass it on).

    Returns only after commit and fsync: the caller may then answer 250.
    """
    users: dict[int, User] = {}
    reached_by: dict[int, Recipient] = {}
    queue: dict[str, QueueEntry] = {}
    for r in envelope.recipients:
        for user in r.route.users:
            users.setdefault(user.id, user)
            reached_by.setdefault(user.id, r)
        for target in r.route.external:
            queue.setdefault(target.lower(), QueueEntry(envelope.sender, target, _dsn(envelope, r)))
    full = [user for user in users.values() if not has_room(ctx.store, user, len(raw))]
    notices: list[Notice] = []
    if full:
        if len(full) == len(users) and not queue:
            raise QuotaExceeded("every recipient's mailbox is full")  # the SMTP client is told at once
        for user in full:
            del users[user.id]
        notices = _quota_notices(ctx, envelope, raw, [(user, reached_by[user.id]) for user in full])

    # The MDA filter pipeline (spam, virus, rules, receipts) runs here, between routing and
    # the store: it sees the envelope, the local users and ``raw``, and may reject (raising
    # ``appliance.mda.errors.Refused``), quarantine or add headers before anything is written.
    # With no local recipient it only records the receipt ledger of a local sender.
    mda = getattr(ctx, "mda", None)
    if mda is not None:
        return mda.deliver(envelope, raw, list(users.values()), list(queue.values()), crlf_checked=crlf_checked,
                           notices=notices)
    deliveries = [Delivery(user_id) for user_id in users]
    if deliveries:
        raw = b"Return-Path: <" + envelope.sender.encode("utf-8", "surrogateescape") + b">\r\n" + raw
    if notices:
        return ctx.store.deliver_filtered([Notice(raw, tuple(deliveries), tuple(queue.values())), *notices])
    return ctx.store.deliver(raw, deliveries, list(queue.values()))


def _quota_notices(ctx, envelope: Envelope, raw: bytes, left_out: list[tuple[User, Recipient]]) -> list[Notice]:
    """The failure DSN (RFC 3464, status 5.2.2) for list members whose mailbox is full: the
    others got the message, and the sender hears which member did not (RFC 3461 NOTIFY)."""
    for user, r in left_out:
        log.info("%s: <%s> (through <%s>) left out: mailbox full", envelope.message_id, user.address, r.route.address)
    if not envelope.sender:
        return []  # never a bounce for a bounce
    statuses = [dsn.RecipientStatus(user.address, dsn.FAILED, "5.2.2", "mailbox full",
                                    orcpt=r.orcpt or ("rfc822", r.route.address))
                for user, r in left_out if dsn.wanted(_dsn(envelope, r), dsn.FAILED)]
    if not statuses:
        return []
    report = dsn.build(ctx.hostname, envelope.sender, raw, statuses, time.time(), envelope.ret, envelope.envid)
    notice = address_notice(ctx.store, envelope.sender, report)
    return [notice] if notice is not None else []
