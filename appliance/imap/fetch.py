"""FETCH attributes (RFC 3501 §6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ).

``parse_fetch_atts`` reads the attribute list of FETCH; each ``FetchAtt`` knows
its response key (``BODY[1.HEADER.FIELDS (FROM)]<0>``) and whether fetching it
sets \\Seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.imap.parse import Cursor

SIMPLE = frozenset({
    "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
    "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ",
})
MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_NAME = re.compile(rb"[A-Za-z0-9.]+")
_HEADER_NAME = frozenset(range(0x21, 0x7F)) - {ord(":")}


@dataclass(frozen=True)
class Section:
    """section-spec: a part path (empty for the whole message) and an optional text part."""

    part: tuple[int, ...] = ()
    text: str | None = None  # HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()  # for HEADER.FIELDS[.NOT], upper-cased

    def render(self) -> bytes:
        pieces = [".".join(str(n) for n in self.part)] if self.part else []
        if self.text:
            pieces.append(self.text)
        spec = ".".join(pieces)
        if self.fields:
            spec += " (" + " ".join(self.fields) + ")"
        return b"[" + spec.encode("ascii") + b"]"


@dataclass(frozen=True)
class FetchAtt:
    """One fetch-att. ``name`` is BODY/BINARY/BINARY.SIZE when ``section`` is set."""

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None  # (origin, octet count)
    peek: bool = False

    @property
    def sets_seen(self) -> bool:
        # RFC 3501 §6.4.5: BODY[...] and RFC822 / RFC822.TEXT set \Seen; RFC 3516 the same for BINARY[]
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        return self.name in ("BODY", "BINARY") and self.section is not None and not self.peek

    def response_key(self) -> bytes:
        """The item name as it appears in the FETCH response (PEEK dropped, origin only)."""
        if self.section is None:
            return self.name.encode("ascii")
        key = self.name.encode("ascii") + self.section.render()
        if self.partial is not None:
            key += b"<%d>" % self.partial[0]
        return key


def _header_field(cursor: Cursor) -> str:
    # header-fld-name = astring; we accept the printable characters of RFC 5322 field names
    raw = cursor.astring()
    if not raw or any(b not in _HEADER_NAME for b in raw):
        raise cursor.error("bad header field name")
    return raw.decode("ascii").upper()


def _section(cursor: Cursor) -> Section:
    # section = "[" [section-spec] "]". RFC 3516's section-binary is only "[" [section-part] "]",
    # but clients also ask BINARY for a HEADER, MIME or TEXT section: those carry no
    # Content-Transfer-Encoding of their own, so they are read like BODY's (see the session)
    cursor.expect(b"[")
    part: list[int] = []
    text = None
    fields: tuple[str, ...] = ()
    # section-part = nz-number *("." nz-number); a "." not followed by a digit
    # introduces the section-text
    dotted = False
    while cursor.peek().isdigit() and (dotted or not part):
        part.append(cursor.nz_number())
        dotted = cursor.maybe(b".")
    if dotted and cursor.peek() == b"]":
        raise cursor.error("bad section")
    if cursor.peek() != b"]":
        if part and not dotted:
            raise cursor.error("bad section")
        word = _NAME.match(cursor.data, cursor.pos)
        text = word.group(0).decode().upper() if word else ""
        if text not in ("HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER", "TEXT", "MIME"):
            raise cursor.error("bad section")
        cursor.pos = word.end()
        if text == "MIME" and not part:
            raise cursor.error("MIME needs a part number")
        if text.startswith("HEADER.FIELDS"):
            cursor.sp()
            fields = tuple(cursor.paren_list(lambda: _header_field(cursor), allow_empty=False))
    cursor.expect(b"]")
    return Section(tuple(part), text, fields)


def _partial(cursor: Cursor) -> tuple[int, int] | None:
    # "<" number "." nz-number ">"
    if not cursor.maybe(b"<"):
        return None
    origin = cursor.number()
    cursor.expect(b".")
    count = cursor.nz_number()
    cursor.expect(b">")
    return origin, count


def parse_fetch_att(cursor: Cursor) -> FetchAtt:
    match = _NAME.match(cursor.data, cursor.pos)
    if not match:
        raise cursor.error("expected a fetch attribute")
    name = match.group(0).decode().upper()
    cursor.pos = match.end()
    if cursor.peek() == b"[":
        if name in ("BODY", "BODY.PEEK"):
            section = _section(cursor)
            return FetchAtt("BODY", section, _partial(cursor), name == "BODY.PEEK")
        if name in ("BINARY", "BINARY.PEEK"):
            section = _section(cursor)
            return FetchAtt("BINARY", section, _partial(cursor), name == "BINARY.PEEK")
        if name == "BINARY.SIZE":
            return FetchAtt("BINARY.SIZE", _section(cursor))
        raise cursor.error(f"{name} takes no section")
    if name not in SIMPLE:
        raise cursor.error(f"unknown fetch attribute {name}")
    return FetchAtt(name)


def parse_fetch_atts(cursor: Cursor) -> tuple[FetchAtt, ...]:
    """ "ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")" """
    if cursor.peek() == b"(":
        return tuple(cursor.paren_list(lambda: parse_fetch_att(cursor), allow_empty=False))
    match = _NAME.match(cursor.data, cursor.pos)
    word = match.group(0).decode().upper() if match else ""
    if word in MACROS and cursor.data[match.end():match.end() + 1] != b"[":
        cursor.pos = match.end()
        return tuple(FetchAtt(n) for n in MACROS[word])
    return (parse_fetch_att(cursor),)

