"""The shape every MDA filter has: a long-lived ``Filter`` makes one ``Check`` per message.

A check has four hooks, as maddy's check modules do, each returning a ``Verdict``:
``check_connection`` (client address and HELO), ``check_sender`` (envelope sender),
``check_body`` (the whole message, once) and ``check_rcpt`` (once per local user, after
the body, because per-user decisions — Bayes, Sieve — read the message and the headers
earlier filters added). ``close()`` always runs, whatever the hooks did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from appliance import mime
from appliance.mda import authresults
from appliance.store import Notice, User


@dataclass(frozen=True)
class Verdict:
    """What one hook decided. The default verdict accepts and changes nothing."""

    reject: tuple[int, str, str] | None = None  # (code, enhanced status, text): refuse at end of DATA
    quarantine: bool = False  # hold the message for the administrator
    discard: bool = False  # accept and drop (for one recipient in check_rcpt, else for all)
    reason: str = ""  # for the log, the quarantine list and the counters; never sent to the client
    add_headers: tuple[tuple[str, str], ...] = ()  # (name, value), added on top of the message
    folders: tuple[str, ...] = ()  # check_rcpt: file into these mailboxes instead of INBOX
    create: tuple[str, ...] = ()  # check_rcpt: those of ``folders`` to make when missing (Sieve :create)
    flags: tuple[str, ...] = ()  # check_rcpt: IMAP flags for the stored copy
    redirect: tuple[str, ...] = ()  # check_rcpt: also send the message on to these addresses
    notices: tuple[Notice, ...] = ()  # messages to write with the delivery (receipts, replies)


ACCEPT = Verdict()


def without_forged_results(raw: bytes, hostname: str) -> bytes:
    """Drop Authentication-Results fields that claim to come from us (RFC 8601 §5: a
    sender could otherwise forge our verdicts); they can only be a stranger's. A field
    is ours however its authserv-id is written (authresults.authserv_id), and a message
    without a body is no exception."""
    end = mime.header_end(raw)
    if b"authentication-results" not in raw[:end].lower():
        return raw
    ours = hostname.lower().rstrip(".")
    head = mime.headers.without_fields(raw[:end], lambda name, value: name.lower() == "authentication-results"
                                       and authresults.authserv_id(value) == ours)
    return head + raw[end:]


def headers_text(headers) -> bytes:
    """Header fields as wire bytes, each value folded only where it already has breaks."""
    return b"".join(f"{name}: {value}\r\n".encode("utf-8") for name, value in headers)


class Incoming:
    """One message on its way to local mailboxes, as the filters see it.

    ``raw`` starts with our Received header and carries no Return-Path; ``info`` is its
    MIME analysis (done once here, never by a filter). ``crlf_checked``: the caller knows
    every line of ``raw`` already ends in CRLF (the SMTP server checked it while reading).
    """

    def __init__(self, envelope, raw: bytes, users: list[User], hostname: str, trusted: bool = False,
                 crlf_checked: bool = False):
        self.envelope = envelope  # appliance.mta.router.Envelope
        self.trusted = trusted  # the client is in a trusted network (a LAN webmail, a scanner)
        if not crlf_checked:
            raw = mime.normalize_crlf(raw)
        self.raw = raw if self.internal else without_forged_results(raw, hostname)
        self.users = users  # the local users it is for (after aliases)
        self.hostname = hostname
        # its top-level header, read once for the analysis, the filters and the store
        self.fields = mime.header_fields(self.raw[:mime.header_end(self.raw)])
        self.info = mime.analyze(self.raw, crlf=True, fields=self.fields)  # checked or normalized above
        self.added: list[tuple[str, str]] = []  # headers earlier filters added, in order
        self.notes: dict = {}  # results filters pass on (auth results, spam scores per user)

    @property
    def sender(self) -> str:
        return self.envelope.sender

    @property
    def authenticated(self) -> bool:
        """Submitted by a logged-in local user: sender checks do not apply."""
        return bool(self.envelope.authenticated_as)

    @property
    def internal(self) -> bool:
        """From a logged-in user or a trusted network ([auth] trusted_networks): not scored as spam."""
        return self.authenticated or self.trusted

    @cached_property
    def _fields_by_name(self) -> dict[str, list[bytes]]:
        """Lower-cased name -> raw values, in order: each filter's questions cost a lookup."""
        index: dict[str, list[bytes]] = {}
        for n, v in self.fields:
            index.setdefault(n.lower(), []).append(v)
        return index

    def header(self, name: str) -> list[str]:
        """Decoded values of a top-level header field (filters' own additions included)."""
        wanted = name.lower()
        values = [v for n, v in self.added if n.lower() == wanted] if self.added else []
        values += [mime.headers.decode_words(v) for v in self._fields_by_name.get(wanted, ())]
        return values

    def addresses(self, name: str) -> list[str]:
        """The addresses of a header such as To or Cc, as written, read from the raw bytes by
        the parser behind IMAP's ENVELOPE (mime.mailboxes), never from decoded words."""
        wanted = name.lower()
        values = [v.encode() for n, v in self.added if n.lower() == wanted] if self.added else []
        values += self._fields_by_name.get(wanted, ())
        return [a for value in values for a in mime.mailboxes(value)]

    @cached_property
    def author(self) -> mime.Author:
        """Who the message is from: what DMARC checks and ENVELOPE and the TUI show."""
        return mime.author(self.fields)

    @cached_property
    def body_text(self) -> str:
        return mime.body_text(self.raw, self.info)


class Check:
    """One filter's look at one message. Override the hooks you need."""

    def __init__(self, msg: Incoming):
        self.msg = msg

    def check_connection(self) -> Verdict:
        return ACCEPT

    def check_sender(self) -> Verdict:
        return ACCEPT

    def check_body(self) -> Verdict:
        return ACCEPT

    def check_rcpt(self, user: User) -> Verdict:
        return ACCEPT

    def close(self) -> None:
        """Always called, also after a hook raised."""


class Filter:
    """A configured filter, shared by all messages; ``check(msg)`` makes the per-message object."""

    name = "filter"
    # True when its checks only compute and use the store, never wait on another host (clamd,
    # spamd, DNS): the pipeline then calls them in the SMTP session's thread. False (the
    # default, safe for a filter that does not say) runs them on the MDA's pool, bounded by
    # [mda] time_budget.
    runs_locally = False

    def check(self, msg: Incoming) -> Check:
        raise NotImplementedError

    def close(self) -> None:
        """Release sockets and caches when the server stops."""


@dataclass
class Outcome:
    """Everything the pipeline decided about one message."""

    reject: tuple[int, str, str] | None = None
    quarantine: str = ""  # the reason, when held
    discard: bool = False
    reasons: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)  # for every copy
    per_user: dict[int, "UserOutcome"] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)

    @property
    def decided(self) -> bool:
        """Refused, held or dropped: nothing later filters say could change its fate."""
        return bool(self.reject or self.quarantine or self.discard)


@dataclass
class UserOutcome:
    headers: list[tuple[str, str]] = field(default_factory=list)
    folders: tuple[str, ...] = ()
    create: tuple[str, ...] = ()  # of ``folders``, those the delivery makes when missing
    flags: tuple[str, ...] = ()
    discard: bool = False
    redirect: tuple[str, ...] = ()
    reject: tuple[int, str, str] | None = None  # the recipient's rules refused the message
    reasons: list[str] = field(default_factory=list)
