"""SEARCH criteria (RFC 3501 §6.4.4, RFC 4731 ESEARCH, RFC 7162 MODSEQ) as a key tree.

The tree is made of ``Key`` leaves and ``And``/``Or``/``Not`` nodes. String
arguments stay bytes: the CHARSET of the command says how to read them, and
the session checks the charset before evaluating.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.imap.parse import MAX_MODSEQ, Cursor

# key name → argument kind (RFC 3501 §9 search-key)
_KEYS: dict[str, str] = {
    "ALL": "", "ANSWERED": "", "DELETED": "", "DRAFT": "", "FLAGGED": "", "NEW": "",
    "OLD": "", "RECENT": "", "SEEN": "", "UNANSWERED": "", "UNDELETED": "", "UNDRAFT": "",
    "UNFLAGGED": "", "UNSEEN": "",
    "BCC": "string", "BODY": "string", "CC": "string", "FROM": "string",
    "SUBJECT": "string", "TEXT": "string", "TO": "string",
    "BEFORE": "date", "ON": "date", "SINCE": "date",
    "SENTBEFORE": "date", "SENTON": "date", "SENTSINCE": "date",
    "KEYWORD": "flag", "UNKEYWORD": "flag",
    "LARGER": "number", "SMALLER": "number",
    "UID": "seqset",
    "HEADER": "header", "MODSEQ": "modseq",
}
RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "PARTIAL", "CONTEXT", "UPDATE"})  # RFC 4731, 5182, 9394, 5267 §4


@dataclass(frozen=True)
class Key:
    """A leaf: ``name`` as in the RFC ("SEQ" for a bare sequence set)."""

    name: str
    arg: object = None  # bytes, date, str flag, int, SequenceSet, (field, value)


@dataclass(frozen=True)
class And:
    keys: tuple


@dataclass(frozen=True)
class Or:
    left: object
    right: object


@dataclass(frozen=True)
class Not:
    key: object


@dataclass(frozen=True)
class SearchProgram:
    """Everything after SEARCH: RETURN options, CHARSET and the criteria (an And)."""

    criteria: And
    charset: str | None = None
    returns: frozenset[str] | None = None  # None: classic SEARCH reply; set: ESEARCH
    partial: tuple[int, int] | None = None  # RETURN (PARTIAL first:last), negative counts from the end (RFC 9394)


def _key(cursor: Cursor):
    # search-key = ... / sequence-set / "(" search-key *(SP search-key) ")"
    first = cursor.peek()
    if first == b"(":
        return And(tuple(cursor.paren_list(lambda: _key(cursor), allow_empty=False)))
    if first.isdigit() or first in (b"*", b"$"):
        return Key("SEQ", cursor.sequence_set())
    name = cursor.keyword()
    if name == "NOT":
        cursor.sp()
        cursor.enter()  # NOT and OR nest without parentheses; bound them too
        key = _key(cursor)
        cursor.depth -= 1
        return Not(key)
    if name == "OR":
        cursor.enter()
        cursor.sp()
        left = _key(cursor)
        cursor.sp()
        right = _key(cursor)
        cursor.depth -= 1
        return Or(left, right)
    kind = _KEYS.get(name)
    if kind is None:
        raise cursor.error(f"unknown search key {name}")
    if kind == "":
        return Key(name)
    cursor.sp()
    if kind == "string":
        return Key(name, cursor.astring())
    if kind == "date":
        return Key(name, cursor.date())
    if kind == "flag":
        flag = cursor.flag()
        return Key(name, flag)
    if kind == "number":
        return Key(name, cursor.number())
    if kind == "seqset":
        return Key(name, cursor.sequence_set())
    if kind == "header":
        field = cursor.astring()
        cursor.sp()
        return Key(name, (field.decode("ascii", "replace"), cursor.astring()))
    # MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer (RFC 7162 §3.1.5);
    # we keep one mod-sequence per message, so the entry is read and ignored
    if cursor.peek() == b'"':
        cursor.quoted()
        cursor.sp()
        entry_type = cursor.keyword()
        if entry_type not in ("PRIV", "SHARED", "ALL"):
            raise cursor.error("bad MODSEQ entry type")
        cursor.sp()
    return Key(name, cursor.number(MAX_MODSEQ))


def parse_search(cursor: Cursor) -> SearchProgram:
    """search = "SEARCH" [search-return-opts] [SP "CHARSET" SP astring] 1*(SP search-key)"""
    returns = None
    partial = None
    charset = None
    keys = []
    cursor.sp()
    if cursor.maybe(b"RETURN "):
        returns, partial = parse_return_options(cursor, RETURN_OPTIONS)
        cursor.sp()
    if cursor.maybe(b"CHARSET "):
        charset = cursor.astring().decode("ascii", "replace").upper()
        cursor.sp()
    keys.append(_key(cursor))
    while not cursor.at_end():
        cursor.sp()
        keys.append(_key(cursor))
    return SearchProgram(And(tuple(keys)), charset, returns, partial)


def parse_return_options(cursor: Cursor, allowed: frozenset[str]) -> tuple[frozenset[str], tuple[int, int] | None]:
    """ "(" [return-opt *(SP return-opt)] ")" after RETURN, for SEARCH (RFC 4731 §3.1) and
    SORT (RFC 5267 §3.1): the options and the PARTIAL range, if asked."""
    readers = {name: (lambda: partial_range(cursor)) if name == "PARTIAL" else None for name in allowed}
    options = cursor.options(readers, "return option")
    # RFC 4731 §3.1 and RFC 5267 §3.1: RETURN () means RETURN (ALL)
    return frozenset(options or {"ALL"}), options.get("PARTIAL")


def partial_range(cursor: Cursor) -> tuple[int, int]:
    """partial-range = partial-range-first / partial-range-last (RFC 9394 §5):
    "1:100" counts from the first result, "-1:-100" from the last."""
    negative = cursor.maybe(b"-")
    first = cursor.nz_number()
    cursor.expect(b":")
    if negative:
        cursor.expect(b"-")
    last = cursor.nz_number()
    return (-first, -last) if negative else (first, last)


def key_names(node) -> set[str]:
    """The names of every key in a search program, however deeply nested."""
    if isinstance(node, Key):
        return {node.name}
    if isinstance(node, And):
        return set().union(*(key_names(k) for k in node.keys))
    if isinstance(node, Or):
        return key_names(node.left) | key_names(node.right)
    return key_names(node.key)


def uses_modseq(node) -> bool:
    """True when MODSEQ appears anywhere (RFC 7162 §3.1.5: the reply then carries MODSEQ)."""
    return "MODSEQ" in key_names(node)


def parse_criteria(cursor: Cursor) -> And:
    """1*(SP search-key) to the end of the command: what SORT and THREAD take after their
    charset (RFC 5256 §5 search-criteria)."""
    keys = []
    while True:
        cursor.sp()
        keys.append(_key(cursor))
        if cursor.at_end():
            return And(tuple(keys))
