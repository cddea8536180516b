"""Commands legal only in the selected state (RFC 3501 §6.4) and their UID forms."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.imap.commands.base import Command
from appliance.imap.fetch import FetchAtt, parse_fetch_atts
from appliance.imap.parse import MAX_MODSEQ, SequenceSet
from appliance.imap.search import SearchProgram, parse_search, partial_range


@dataclass(frozen=True)
class Check(Command):
    VERB = "CHECK"


@dataclass(frozen=True)
class Close(Command):
    VERB = "CLOSE"


@dataclass(frozen=True)
class Unselect(Command):
    VERB = "UNSELECT"


@dataclass(frozen=True)
class Expunge(Command):
    VERB = "EXPUNGE"


@dataclass(frozen=True)
class UidExpunge(Command):
    # uid-expunge = "UID" SP "EXPUNGE" SP sequence-set (RFC 4315 §2.1)
    VERB = "UID EXPUNGE"
    uids: SequenceSet | None = None

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        return cls(tag, cursor.sequence_set())


@dataclass(frozen=True)
class Search(Command):
    VERB = "SEARCH"
    UID = False
    program: SearchProgram | None = None

    @classmethod
    def parse(cls, tag, cursor):
        return cls(tag, parse_search(cursor))


@dataclass(frozen=True)
class UidSearch(Search):
    VERB = "UID SEARCH"
    UID = True


@dataclass(frozen=True)
class Fetch(Command):
    # fetch = "FETCH" SP sequence-set SP (macro / att / att-list) [fetch-modifiers]
    # fetch-modifier = "CHANGEDSINCE" SP mod-sequence-valzer / "VANISHED" (RFC 7162 §3.1.4, §3.2.6)
    VERB = "FETCH"
    UID = False
    messages: SequenceSet | None = None
    atts: tuple[FetchAtt, ...] = ()
    changedsince: int | None = None
    vanished: bool = False
    partial: tuple[int, int] | None = None  # fetch-modifier =/ "PARTIAL" SP partial-range (RFC 9394 §4)

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        messages = cursor.sequence_set()
        cursor.sp()
        atts = parse_fetch_atts(cursor)
        modifiers = {}
        if not cursor.at_end():
            cursor.sp()
            modifiers = cursor.options({"CHANGEDSINCE": lambda: cursor.number(MAX_MODSEQ), "VANISHED": None,
                                        "PARTIAL": lambda: partial_range(cursor)}, "fetch modifier", allow_empty=False)
        changedsince, vanished, partial = (modifiers.get("CHANGEDSINCE"), "VANISHED" in modifiers,
                                           modifiers.get("PARTIAL"))
        if vanished and (not cls.UID or changedsince is None):
            # RFC 7162 §3.2.6: VANISHED only with UID FETCH and CHANGEDSINCE
            raise cursor.error("VANISHED needs UID FETCH with CHANGEDSINCE")
        return cls(tag, messages, atts, changedsince, vanished, partial)


@dataclass(frozen=True)
class UidFetch(Fetch):
    VERB = "UID FETCH"
    UID = True


@dataclass(frozen=True)
class Store(Command):
    # store = "STORE" SP sequence-set [SP store-modifiers] SP store-att-flags
    # store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))
    # store-modifier = "UNCHANGEDSINCE" SP mod-sequence-valzer (RFC 7162 §3.1.3)
    VERB = "STORE"
    UID = False
    messages: SequenceSet | None = None
    mode: str = ""  # "" replace, "+" add, "-" remove
    silent: bool = False
    flags: tuple[str, ...] = ()
    unchangedsince: int | None = None

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        messages = cursor.sequence_set()
        cursor.sp()
        unchangedsince = None
        if cursor.peek() == b"(":
            modifiers = cursor.options({"UNCHANGEDSINCE": lambda: cursor.number(MAX_MODSEQ)}, "store modifier",
                                       allow_empty=False)
            unchangedsince = modifiers["UNCHANGEDSINCE"]
            cursor.sp()
        mode = ""
        if cursor.peek() in (b"+", b"-"):
            mode = cursor.peek().decode()
            cursor.pos += 1
        item = cursor.keyword()
        if item not in ("FLAGS", "FLAGS.SILENT"):
            raise cursor.error("expected FLAGS or FLAGS.SILENT")
        cursor.sp()
        flags = tuple(cursor.store_flags())
        if "\\Recent" in flags or "\\*" in flags:
            raise cursor.error("\\Recent and \\* cannot be stored")
        return cls(tag, messages, mode, item.endswith(".SILENT"), flags, unchangedsince)


@dataclass(frozen=True)
class UidStore(Store):
    VERB = "UID STORE"
    UID = True


@dataclass(frozen=True)
class Copy(Command):
    # copy = "COPY" SP sequence-set SP mailbox
    VERB = "COPY"
    UID = False
    messages: SequenceSet | None = None
    mailbox: str = ""

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        messages = cursor.sequence_set()
        cursor.sp()
        return cls(tag, messages, cursor.mailbox())


@dataclass(frozen=True)
class UidCopy(Copy):
    VERB = "UID COPY"
    UID = True


@dataclass(frozen=True)
class Move(Copy):
    # move = "MOVE" SP sequence-set SP mailbox (RFC 6851 §3)
    VERB = "MOVE"


@dataclass(frozen=True)
class UidMove(Copy):
    VERB = "UID MOVE"
    UID = True


COMMANDS = (Check, Close, Unselect, Expunge, UidExpunge, Search, UidSearch, Fetch, UidFetch,
            Store, UidStore, Copy, UidCopy, Move, UidMove)
