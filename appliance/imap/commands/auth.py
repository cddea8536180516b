"""Commands legal in the authenticated state, and so also when selected (RFC 3501 §6.3)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from appliance.imap.commands.base import Command
from appliance.imap.commands.notify import Notify
from appliance.imap.parse import MAX_MODSEQ, SequenceSet


@dataclass(frozen=True)
class QresyncParams:
    """RFC 7162 §3.2.5: QRESYNC (uidvalidity modseq [known-uids [seq-match-data]])."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    known_seqs: SequenceSet | None = None  # seq-match-data: sequence numbers ...
    known_seq_uids: SequenceSet | None = None  # ... and the UIDs they had


@dataclass(frozen=True)
class Select(Command):
    # select = "SELECT" SP mailbox [SP "(" select-param *(SP select-param) ")"] (RFC 4466)
    VERB = "SELECT"
    READ_ONLY = False
    mailbox: str = ""
    condstore: bool = False
    qresync: QresyncParams | None = None

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        mailbox = cursor.mailbox()
        condstore = False
        qresync = None
        if not cursor.at_end():
            cursor.sp()

            def param():
                nonlocal condstore, qresync
                name = cursor.keyword()
                if name == "CONDSTORE":
                    condstore = True
                elif name == "QRESYNC":
                    cursor.sp()
                    cursor.open_paren()
                    uidvalidity = cursor.nz_number()
                    cursor.sp()
                    modseq = cursor.nz_number(MAX_MODSEQ)
                    known_uids = seqs = seq_uids = None
                    if cursor.peek() == b" ":
                        cursor.sp()
                        if cursor.peek() != b"(":
                            known_uids = cursor.sequence_set()
                            if cursor.peek() == b" ":
                                cursor.sp()
                        if cursor.peek() == b"(":
                            cursor.open_paren()
                            seqs = cursor.sequence_set()
                            cursor.sp()
                            seq_uids = cursor.sequence_set()
                            if not cursor.close_paren():
                                raise cursor.error("expected ) after seq-match-data")
                    if not cursor.close_paren():
                        raise cursor.error("expected ) after QRESYNC parameters")
                    qresync = QresyncParams(uidvalidity, modseq, known_uids, seqs, seq_uids)
                else:
                    raise cursor.error(f"unknown select parameter {name}")

            cursor.paren_list(param, allow_empty=False)
        return cls(tag, mailbox, condstore, qresync)


@dataclass(frozen=True)
class Examine(Select):
    VERB = "EXAMINE"
    READ_ONLY = True


@dataclass(frozen=True)
class MailboxCommand(Command):
    """Commands whose only argument is one mailbox name."""

    mailbox: str = ""

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        return cls(tag, cursor.mailbox())


@dataclass(frozen=True)
class Create(MailboxCommand):
    VERB = "CREATE"


@dataclass(frozen=True)
class Delete(MailboxCommand):
    VERB = "DELETE"


@dataclass(frozen=True)
class Subscribe(MailboxCommand):
    VERB = "SUBSCRIBE"


@dataclass(frozen=True)
class Unsubscribe(MailboxCommand):
    VERB = "UNSUBSCRIBE"


@dataclass(frozen=True)
class GetQuotaRoot(MailboxCommand):
    VERB = "GETQUOTAROOT"


@dataclass(frozen=True)
class GetQuota(Command):
    # getquota = "GETQUOTA" SP quota-root-name (RFC 9208); the root is an astring
    VERB = "GETQUOTA"
    root: str = ""

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        return cls(tag, cursor.astring().decode("utf-8", "replace"))


@dataclass(frozen=True)
class Rename(Command):
    VERB = "RENAME"
    old: str = ""
    new: str = ""

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        old = cursor.mailbox()
        cursor.sp()
        return cls(tag, old, cursor.mailbox())


STATUS_ITEMS = frozenset(
    {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "DELETED"}
)


def _status_items(cursor) -> tuple[str, ...]:
    # status-att-list = status-att *(SP status-att)
    def item():
        name = cursor.keyword()
        if name not in STATUS_ITEMS:
            raise cursor.error(f"unknown status item {name}")
        return name

    return tuple(cursor.paren_list(item, allow_empty=False))


@dataclass(frozen=True)
class Status(Command):
    # status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"
    VERB = "STATUS"
    mailbox: str = ""
    items: tuple[str, ...] = ()

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        mailbox = cursor.mailbox()
        cursor.sp()
        return cls(tag, mailbox, _status_items(cursor))


SELECTION_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})


@dataclass(frozen=True)
class List(Command):
    # list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]
    # (RFC 5258 §6, RFC 6154 §6, RFC 5819 for STATUS)
    VERB = "LIST"
    reference: str = ""
    patterns: tuple[str, ...] = ()
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()
    extended: bool = False  # any LIST-EXTENDED syntax used (changes some replies)

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        selection: set[str] = set()
        extended = False
        if cursor.peek() == b"(":
            extended = True
            selection = set(cursor.options(dict.fromkeys(SELECTION_OPTIONS), "selection option"))
            cursor.sp()
            # RFC 5258 §3.1: RECURSIVEMATCH needs an option other than REMOTE to recurse on
            if "RECURSIVEMATCH" in selection and selection <= {"RECURSIVEMATCH", "REMOTE"}:
                raise cursor.error("RECURSIVEMATCH needs another selection option")
        reference = cursor.list_mailbox()  # grammar says mailbox; a pattern is a superset
        cursor.sp()
        if cursor.peek() == b"(":
            extended = True
            patterns = tuple(cursor.paren_list(cursor.list_mailbox, allow_empty=False))
        else:
            patterns = (cursor.list_mailbox(),)
        returns: dict[str, object] = {}
        if not cursor.at_end():
            cursor.sp()
            cursor.expect(b"RETURN")
            cursor.sp()
            extended = True
            readers = {name: (lambda: _status_items(cursor)) if name == "STATUS" else None for name in RETURN_OPTIONS}
            returns = cursor.options(readers, "return option")
        status_items = returns.get("STATUS", ())
        return cls(tag, reference, patterns, frozenset(selection), frozenset(returns), status_items, extended)


@dataclass(frozen=True)
class Lsub(Command):
    VERB = "LSUB"
    reference: str = ""
    pattern: str = ""

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        reference = cursor.list_mailbox()
        cursor.sp()
        return cls(tag, reference, cursor.list_mailbox())


@dataclass(frozen=True)
class CatenatePart:
    """One cat-part of RFC 4469 §5: literal ``text``, or an IMAP ``url`` whose data is copied."""

    text: bytes | None = None
    url: str | None = None


@dataclass(frozen=True)
class AppendMessage:
    """One append-message: its flags, date and either a literal or CATENATE parts."""

    flags: tuple[str, ...] = ()
    date: dt.datetime | None = None
    message: bytes = b""
    parts: tuple[CatenatePart, ...] | None = None  # CATENATE (RFC 4469); None for a plain literal
    binary: bool = False  # sent as a literal8 "~{n}" (RFC 3516 §4.3): stored byte for byte


def _append_message(cursor) -> AppendMessage:
    # append-message = append-opts SP append-data (RFC 3502 §6, RFC 4466 §2.6)
    # append-opts = [flag-list SP] [date-time SP]
    flags: tuple[str, ...] = ()
    date = None
    if cursor.peek() == b"(":
        flags = tuple(cursor.flag_list())
        cursor.sp()
    if cursor.peek() == b'"':
        date = cursor.date_time()
        cursor.sp()
    if cursor.maybe(b"UTF8 ("):
        # append-data =/ "UTF8" SP "(" literal8 ")" (RFC 9755 §4: a message with UTF-8 headers);
        # the literal8 is asked for whatever the content, so it does not make the message binary
        message = cursor.literal(allow_binary=True)
        cursor.expect(b")")
        return AppendMessage(flags, date, message)
    if cursor.maybe(b"CATENATE "):
        # append-data =/ "CATENATE" SP "(" cat-part *(SP cat-part) ")" (RFC 4469 §5)
        def cat_part() -> CatenatePart:
            kind = cursor.keyword()
            cursor.sp()
            if kind == "TEXT":
                return CatenatePart(text=cursor.literal(allow_binary=True))
            if kind == "URL":
                return CatenatePart(url=cursor.astring().decode("utf-8", "replace"))
            raise cursor.error("expected TEXT or URL")

        return AppendMessage(flags, date, parts=tuple(cursor.paren_list(cat_part, allow_empty=False)))
    binary = cursor.peek() == b"~"
    return AppendMessage(flags, date, cursor.literal(allow_binary=True), binary=binary)


@dataclass(frozen=True)
class Append(Command):
    # append = "APPEND" SP mailbox 1*(SP append-message) (RFC 3502 MULTIAPPEND)
    VERB = "APPEND"
    mailbox: str = ""
    messages: tuple[AppendMessage, ...] = ()

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        mailbox = cursor.mailbox()
        messages = []
        while not cursor.at_end():
            cursor.sp()
            messages.append(_append_message(cursor))
        if not messages:
            raise cursor.error("APPEND needs a message")
        return cls(tag, mailbox, tuple(messages))


@dataclass(frozen=True)
class Namespace(Command):
    VERB = "NAMESPACE"


@dataclass(frozen=True)
class Idle(Command):
    VERB = "IDLE"


@dataclass(frozen=True)
class Enable(Command):
    # enable = "ENABLE" 1*(SP capability) (RFC 5161)
    VERB = "ENABLE"
    capabilities: tuple[str, ...] = ()

    @classmethod
    def parse(cls, tag, cursor):
        names = []
        while not cursor.at_end():
            cursor.sp()
            names.append(cursor.keyword())
        if not names:
            raise cursor.error("ENABLE needs a capability")
        return cls(tag, tuple(names))


COMMANDS = (Select, Examine, Create, Delete, Rename, Subscribe, Unsubscribe, List, Lsub,
            Status, Append, Namespace, Idle, Enable, GetQuota, GetQuotaRoot, Notify)
