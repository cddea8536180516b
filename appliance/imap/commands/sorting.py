"""SORT, THREAD (RFC 5256) and CANCELUPDATE (RFC 5267): selected state, with their UID forms."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.imap.commands.base import Command
from appliance.imap.search import And, parse_criteria, parse_return_options

# RFC 5256 §3 sort-key, RFC 5957 §3 DISPLAYFROM / DISPLAYTO
SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})
THREAD_ALGORITHMS = frozenset({"ORDEREDSUBJECT", "REFERENCES"})
# RFC 5267 §3.1 (ESORT) and §4 (CONTEXT=SORT)
SORT_RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "CONTEXT", "UPDATE", "PARTIAL"})


@dataclass(frozen=True)
class Sort(Command):
    # sort = ["UID" SP] "SORT" [SP sort-return-opts] SP sort-criteria SP search-criteria
    # sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"; sort-criterion = ["REVERSE" SP] sort-key
    # search-criteria = charset 1*(SP search-key)   (RFC 5256 §5; RFC 5267 §5 for RETURN)
    VERB = "SORT"
    UID = False
    order: tuple[tuple[str, bool], ...] = ()  # (key, reverse) in order of precedence
    charset: str = ""
    criteria: And | None = None
    returns: frozenset[str] | None = None  # None: the classic * SORT reply; a set: ESEARCH
    partial: tuple[int, int] | None = None  # RETURN (PARTIAL first:last), as SEARCH's

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        returns = partial = None
        if cursor.maybe(b"RETURN "):
            returns, partial = parse_return_options(cursor, SORT_RETURN_OPTIONS)
            cursor.sp()
        order = []

        def criterion():
            reverse = cursor.maybe(b"REVERSE ")
            key = cursor.keyword()
            if key not in SORT_KEYS:
                raise cursor.error(f"unknown sort key {key}")
            order.append((key, reverse))

        cursor.paren_list(criterion, allow_empty=False)
        cursor.sp()
        charset = cursor.astring().decode("ascii", "replace").upper()
        # clients also put RETURN after the charset; no search key is named RETURN, so
        # reading it there too is unambiguous
        if returns is None and cursor.maybe(b" RETURN "):
            returns, partial = parse_return_options(cursor, SORT_RETURN_OPTIONS)
        return cls(tag, tuple(order), charset, parse_criteria(cursor), returns, partial)


@dataclass(frozen=True)
class UidSort(Sort):
    VERB = "UID SORT"
    UID = True


@dataclass(frozen=True)
class Thread(Command):
    # thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria (RFC 5256 §5)
    VERB = "THREAD"
    UID = False
    algorithm: str = ""
    charset: str = ""
    criteria: And | None = None

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        algorithm = cursor.keyword()
        if algorithm not in THREAD_ALGORITHMS:
            raise cursor.error(f"unknown thread algorithm {algorithm}")
        cursor.sp()
        charset = cursor.astring().decode("ascii", "replace").upper()
        return cls(tag, algorithm, charset, parse_criteria(cursor))


@dataclass(frozen=True)
class UidThread(Thread):
    VERB = "UID THREAD"
    UID = True


@dataclass(frozen=True)
class CancelUpdate(Command):
    # command-select =/ "CANCELUPDATE" 1*(SP quoted)   (RFC 5267 §5)
    VERB = "CANCELUPDATE"
    tags: tuple[bytes, ...] = ()

    @classmethod
    def parse(cls, tag, cursor):
        tags = []
        while not cursor.at_end():
            cursor.sp()
            tags.append(cursor.quoted())
        if not tags:
            raise cursor.error("CANCELUPDATE needs the tag of a search")
        return cls(tag, tuple(tags))


COMMANDS = (Sort, UidSort, Thread, UidThread, CancelUpdate)
