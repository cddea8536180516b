"""SORT, THREAD (RFC 5256) and CANCELUPDATE (RFC 5267): selected state, with their UID forms."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.imap.commands.base import Command
from appliance.imap.search import And, parse_criteria

# RFC 5256 §3 sort-key, RFC 5957 §3 DISPLAYFROM / DISPLAYTO
SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})
THREAD_ALGORITHMS = frozenset({"ORDEREDSUBJECT", "REFERENCES"})
# RFC 5267 §3.1 (ESORT) and §4 (CONTEXT=SORT)
SORT_RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "CONTEXT", "UPDATE", "PARTIAL"})


@dataclass(frozen=True)
class Partial:
    """RFC 5267 §4.4 partial-range ``first:last`` (1-based); RFC 9394 §3.1 adds negative
    ranges, counted from the end (-1 is the last result)."""

    first: int
    last: int

    def pick(self, results: list) -> list:
        count = len(results)
        if self.first < 0:
            low, high = count + max(self.first, self.last) + 1, count + min(self.first, self.last) + 1
            low, high = min(low, high), max(low, high)
        else:
            low, high = min(self.first, self.last), max(self.first, self.last)
        return results[max(low, 1) - 1:max(high, 0)]

    def __str__(self) -> str:
        return f"{self.first}:{self.last}"


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
    partial: Partial | None = None

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        returns = partial = None
        if cursor.maybe(b"RETURN "):
            options = set()

            def option():
                nonlocal partial
                name = cursor.keyword()
                if name not in SORT_RETURN_OPTIONS:
                    raise cursor.error(f"unknown sort return option {name}")
                if name == "PARTIAL":
                    cursor.sp()
                    partial = _partial_range(cursor)
                options.add(name)

            cursor.paren_list(option)
            # RFC 5267 §3.1: an empty list asks for ALL, as RFC 4731 §3.1 does for SEARCH
            returns = frozenset(options or {"ALL"})
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
        return cls(tag, tuple(order), charset, parse_criteria(cursor), returns, partial)


@dataclass(frozen=True)
class UidSort(Sort):
    VERB = "UID SORT"
    UID = True


def _partial_range(cursor) -> Partial:
    # partial-range = partial-range-first ":" partial-range-last; each an nz-number,
    # or both negative (RFC 9394 §3.1)
    negative = cursor.maybe(b"-")
    first = cursor.nz_number()
    cursor.expect(b":")
    if cursor.maybe(b"-") != negative:
        raise cursor.error("a partial range is all positive or all negative")
    last = cursor.nz_number()
    return Partial(-first, -last) if negative else Partial(first, last)


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
