"""Plain records the store hands out. They carry data only; no SQL, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

# The folders every new user gets, with their RFC 6154 special-use attributes.
DEFAULT_MAILBOXES = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


@dataclass(frozen=True)
class User:
    id: int
    address: str
    quota: int        # bytes; 0 means unlimited
    created: float


@dataclass(frozen=True)
class AppPassword:
    id: int
    name: str                 # the device, as the user named it ("Rina's phone")
    created: float
    last_used: float | None   # last login with it; None: never used
    last_ip: str | None       # the address that login came from


@dataclass(frozen=True)
class Mailbox:
    id: int
    user_id: int
    name: str         # full hierarchical name with "/" as delimiter; "INBOX" is always upper case
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None


@dataclass(frozen=True)
class MailboxStatus:
    messages: int
    recent: int
    unseen: int
    deleted: int
    size: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int


class MessageRow(NamedTuple):
    """One message in one mailbox (a NamedTuple: SELECT builds tens of thousands of them)."""

    uid: int
    flags: frozenset[str]
    size: int
    internaldate: float
    modseq: int
    blob_id: int


class MailboxSnapshot(NamedTuple):
    """What SELECT starts from: every message's UID and flags, in UID order, read at one moment."""

    uids: list[int]
    flags: dict[int, frozenset[str]]   # by UID, in UID order
    highest_modseq: int                # of the mailbox and of every message in it, then
    uidnext: int


class MailboxChanges(NamedTuple):
    """What happened in a mailbox after some modseq, up to ``horizon`` (its highestmodseq then)."""

    horizon: int
    vanished: tuple[int, ...]         # UIDs expunged
    changed: tuple[MessageRow, ...]   # messages added or with new flags, in UID order


@dataclass(frozen=True)
class Parsed:
    """The pre-rendered IMAP forms and the analysis JSON of one blob (see appliance.mime)."""

    envelope: bytes
    body: bytes
    bodystructure: bytes
    info_json: str


@dataclass(frozen=True)
class Resolution:
    """Where mail for one address goes: local users and/or external forwarding targets."""

    users: tuple[User, ...]
    external: tuple[str, ...]


@dataclass(frozen=True)
class Delivery:
    """One local recipient of a delivery: into ``mailbox`` (INBOX if it does not exist, unless ``create``)."""

    user_id: int
    mailbox: str = "INBOX"
    flags: tuple[str, ...] = ()
    create: bool = False  # make ``mailbox`` (and its parents) when missing, in the delivery's transaction


@dataclass(frozen=True)
class QueueEntry:
    """One remote recipient to relay."""

    sender: str
    recipient: str
    dsn: dict = field(default_factory=dict)


@dataclass(frozen=True)
class QueueRow:
    id: int
    sender: str
    recipient: str
    domain: str
    created: float
    attempts: int
    next_attempt: float
    last_error: str
    state: str
    size: int
    blob_id: int
    dsn: str
    warned: int = 0   # 1 once a delay DSN was sent for this row


@dataclass(frozen=True)
class QueueOutcome:
    """What one delivery attempt did to one queue row (``Store.finish_queue``)."""

    id: int
    action: str                 # "delivered" | "failed" (both remove the row) | "deferred"
    error: str = ""             # the remote reply or local reason, kept as last_error
    next_attempt: float = 0.0   # for "deferred": when to try again
    warned: bool = False        # for "deferred": a delay DSN goes out with this outcome


@dataclass(frozen=True)
class Notice:
    """A message the MTA writes beside queue outcomes (a DSN): local copies and/or queue rows."""

    raw: bytes
    deliveries: tuple[Delivery, ...] = ()
    queue: tuple[QueueEntry, ...] = ()
