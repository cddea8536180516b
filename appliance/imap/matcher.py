"""Evaluating a SEARCH key tree against the messages of the selected mailbox.

Flags, sizes, dates, UIDs and sequence numbers come from the message rows; the
header keys from the stored analysis (``MessageInfo``, loaded only when a header
key is present); TEXT and BODY from the store's FTS index, asked once per key.
RFC 3501 §6.4.4: string matches are case-insensitive substring matches.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

from appliance.imap.search import And, Key, Not, Or

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
}
HEADER_KEYS = frozenset({"FROM", "TO", "CC", "BCC", "SUBJECT", "HEADER",
                         "SENTBEFORE", "SENTON", "SENTSINCE"})
TEXT_KEYS = frozenset({"TEXT", "BODY"})


@dataclass
class Candidate:
    """One message as SEARCH sees it."""

    seq: int
    uid: int
    flags: frozenset[str]
    size: int
    internaldate: float  # seconds since the epoch
    modseq: int
    recent: bool
    info: object = None  # MessageInfo, set only when a header key needs it


@dataclass
class Context:
    """What every evaluation of one SEARCH shares."""

    largest_seq: int
    largest_uid: int
    text_hits: dict = field(default_factory=dict)  # (name, needle) -> set of UIDs
    find_text: Callable[[str, str], set[int]] | None = None  # (needle, "text"/"body") -> UIDs
    saved: frozenset[int] = frozenset()  # UIDs of the result saved by SEARCH RETURN (SAVE), for "$"

    def text(self, name: str, needle: str) -> set[int]:
        key = (name, needle)
        if key not in self.text_hits:
            self.text_hits[key] = self.find_text(needle, name.lower())
        return self.text_hits[key]


def keys_in(node):
    """Every leaf Key of the tree."""
    if isinstance(node, Key):
        yield node
    elif isinstance(node, And):
        for k in node.keys:
            yield from keys_in(k)
    elif isinstance(node, Or):
        yield from keys_in(node.left)
        yield from keys_in(node.right)
    else:
        yield from keys_in(node.key)


def needs_headers(node) -> bool:
    return any(k.name in HEADER_KEYS for k in keys_in(node))


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace").casefold()


def _header_values(info, name: str) -> list[str]:
    """The decoded values of one top-level header field (header_search has one per line)."""
    prefix = name.casefold() + ":"
    out = []
    for line in info.header_search.split("\n"):
        if line.casefold().startswith(prefix):
            out.append(line[len(prefix):].strip())
    return out


def _day(timestamp: float) -> dt.date:
    # RFC 3501 §6.4.4 compares INTERNALDATE's date alone: the day as it reads in the server's
    # own zone, the zone FETCH shows it in, so that "ON today" is the office's today
    return dt.datetime.fromtimestamp(timestamp).date()


def matches(node, msg: Candidate, ctx: Context) -> bool:
    if isinstance(node, And):
        return all(matches(k, msg, ctx) for k in node.keys)
    if isinstance(node, Or):
        return matches(node.left, msg, ctx) or matches(node.right, msg, ctx)
    if isinstance(node, Not):
        return not matches(node.key, msg, ctx)
    return _leaf(node, msg, ctx)


def _leaf(key: Key, msg: Candidate, ctx: Context) -> bool:
    name, arg = key.name, key.arg
    if name == "ALL":
        return True
    if name in _FLAG_KEYS:
        flag, wanted = _FLAG_KEYS[name]
        return (flag in msg.flags) == wanted
    if name == "NEW":
        return msg.recent and "\\Seen" not in msg.flags
    if name == "OLD":
        return not msg.recent
    if name == "RECENT":
        return msg.recent
    if name == "KEYWORD":
        return arg in msg.flags
    if name == "UNKEYWORD":
        return arg not in msg.flags
    if name == "LARGER":
        return msg.size > arg
    if name == "SMALLER":
        return msg.size < arg
    if name in ("SEQ", "UID") and arg.saved:
        return msg.uid in ctx.saved  # "$" names UIDs, whether or not the command is a UID command
    if name == "SEQ":
        return arg.contains(msg.seq, ctx.largest_seq)
    if name == "UID":
        return arg.contains(msg.uid, ctx.largest_uid)
    if name == "MODSEQ":
        return msg.modseq >= arg
    if name in ("BEFORE", "ON", "SINCE"):
        return _compare(name, _day(msg.internaldate), arg)
    if name in TEXT_KEYS:
        return msg.uid in ctx.text(name, arg.decode("utf-8", "replace"))
    info = msg.info
    if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        # RFC 3501: the Date: header, disregarding time and timezone
        sent = info.date.date() if info.date else _day(msg.internaldate)
        return _compare(name[4:], sent, arg)
    if name == "HEADER":
        field_name, needle = arg
        values = _header_values(info, field_name)
        return bool(values) and any(_text(needle) in v.casefold() for v in values)
    if name == "SUBJECT":
        return _text(arg) in info.subject.casefold()
    if name in ("FROM", "TO", "CC"):
        value = {"FROM": info.from_, "TO": info.to, "CC": info.cc}[name]
        return _text(arg) in value.casefold()
    if name == "BCC":
        return any(_text(arg) in v.casefold() for v in _header_values(info, "bcc"))
    raise ValueError(f"no evaluation for {name}")


def _compare(op: str, day: dt.date, wanted: dt.date) -> bool:
    if op == "BEFORE":
        return day < wanted
    if op == "ON":
        return day == wanted
    return day >= wanted  # SINCE
