"""IMAP responses: named constants, builders, and the one value renderer.

Every byte the session sends is made here. ``response`` is the single writer of
status lines (tagged or untagged); ``data`` writes untagged data responses;
``render`` turns Python values into IMAP syntax (RFC 3501 §4), choosing a
quoted string or a literal as the content requires.
"""

from __future__ import annotations

import datetime as dt

from appliance.imap import utf7

_QUOTED_SAFE = frozenset(range(0x20, 0x7F))


class Atom(bytes):
    """Bytes written verbatim: atoms, flags, numbers already formatted, and the
    pre-rendered ENVELOPE/BODYSTRUCTURE texts from the store."""


NIL = Atom(b"NIL")


def quote(value: bytes, utf8: bool = False) -> bytes:
    """A string as quoted when it can be, else as a literal (RFC 3501 §4.3).

    ``utf8``: UTF-8 may be quoted too (RFC 9755 §3, once the client ENABLEd UTF8=ACCEPT).
    """
    if len(value) < 1024 and all(b in _QUOTED_SAFE or (utf8 and b >= 0x80) for b in value):
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(value)


def mailbox_name(name: str, utf8: bool) -> bytes:
    """A mailbox name on the wire: modified UTF-7 (RFC 3501 §5.1.3), or after ENABLE
    UTF8=ACCEPT the UTF-8 name itself, quoted (RFC 9755 §3)."""
    return quote(name.encode("utf-8"), utf8=True) if utf8 else quote(utf7.encode(name))


def literal(value: bytes) -> bytes:
    return b"{%d}\r\n" % len(value) + value


def render(value) -> bytes:
    """Python value → IMAP: Atom verbatim, bytes/str as string, int as number,
    None as NIL, list/tuple parenthesised."""
    if isinstance(value, Atom):
        return bytes(value)
    if isinstance(value, bytes):
        return quote(value)
    if isinstance(value, str):
        return quote(value.encode("utf-8"))
    if isinstance(value, bool):
        raise TypeError("booleans have no IMAP form")
    if isinstance(value, int):
        return b"%d" % value
    if value is None:
        return b"NIL"
    if isinstance(value, (list, tuple)):
        return b"(" + b" ".join(render(v) for v in value) + b")"
    raise TypeError(f"cannot render {type(value).__name__}")


def response(tag: bytes | None, status: bytes, text: str, code: str | None = None) -> bytes:
    """The single writer of status responses: ``tag`` None gives ``*``.

    resp-cond = ("OK" / "NO" / "BAD" / "BYE" / "PREAUTH") SP ["[" resp-text-code "]" SP] text
    """
    head = b"*" if tag is None else tag
    code_part = b"[" + code.encode("utf-8") + b"] " if code else b""
    # Text is ours, never the client's; strip anything that could break the line.
    safe = text.encode("utf-8").replace(b"\r", b" ").replace(b"\n", b" ")
    return head + b" " + status + b" " + code_part + safe + b"\r\n"


def ok(tag: bytes | None, text: str, code: str | None = None) -> bytes:
    return response(tag, b"OK", text, code)


def no(tag: bytes | None, text: str, code: str | None = None) -> bytes:
    return response(tag, b"NO", text, code)


def bad(tag: bytes | None, text: str, code: str | None = None) -> bytes:
    return response(tag, b"BAD", text, code)


def bye(text: str, code: str | None = None) -> bytes:
    return response(None, b"BYE", text, code)


def data(*words) -> bytes:
    """An untagged data response: ``* word word ...`` with each word rendered."""
    return b"* " + b" ".join(render(w) for w in words) + b"\r\n"


def flags(names) -> Atom:
    """A flag list; flags are atoms (already validated by the parser or the store)."""
    return Atom(b"(" + " ".join(names).encode("ascii") + b")")


def internaldate(when: dt.datetime) -> Atom:
    """date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE"""
    return Atom(when.strftime('"%d-%b-%Y %H:%M:%S %z"').encode("ascii"))


def sequence_set(numbers) -> Atom:
    """Sorted ints compressed to ranges: [1,2,3,7] → 1:3,7 (for COPYUID and VANISHED)."""
    out = []
    start = prev = None
    for n in sorted(numbers):
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    if start is not None:
        out.append(str(start) if start == prev else f"{start}:{prev}")
    return Atom(",".join(out).encode("ascii"))


def ordered_set(numbers: list[int]) -> Atom:
    """Numbers in the given order as a sequence-set; only ascending runs become ranges
    (RFC 5267 §3.1: ESORT's ALL keeps the sort order)."""
    out = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(b"%d" % numbers[i] if i == j else b"%d:%d" % (numbers[i], numbers[j]))
        i = j + 1
    return Atom(b",".join(out))


CONTINUE_LITERAL = b"+ Ready for literal data\r\n"
CONTINUE_IDLE = b"+ idling\r\n"
CONTINUE_SASL = b"+ \r\n"
BYE_LOGOUT = bye("Logging out")
BYE_TIMEOUT = bye("Idle too long, closing")
BYE_TOO_MANY_ERRORS = bye("Too many invalid commands")
BYE_TOO_BUSY = bye("Server busy, try again later", "UNAVAILABLE")
BYE_LITERAL_TOO_BIG = bye("Literal too big, closing as the stream cannot be framed")
BYE_SHUTDOWN = bye("Server shutting down", "UNAVAILABLE")
BYE_LINE_TOO_LONG = bye("Command line too long")
