"""The MIME tree of a message as byte offsets into its raw bytes (RFC 2045, RFC 2046).

The parser looks only at headers and boundary lines: bodies are never copied or decoded
here, boundaries are found with bytes.find. Limits keep hostile messages cheap: a part
nested deeper than MAX_DEPTH, or beyond MAX_PARTS parts in all, is not looked into; a
multipart or message part cut off that way becomes an opaque application/octet-stream,
as Dovecot does. Input must have CRLF line endings (see normalize_crlf).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

from .headers import first_values, header_fields, param_text, parse_mime_value

MAX_DEPTH = 32  # parts nested deeper than this are opaque
MAX_PARTS = 2000  # parts beyond this count are not parsed

_CTE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.+")


@dataclass
class Part:
    """One MIME entity: its place in the raw message and its Content-* headers.

    Offsets satisfy header_start <= body_start <= body_end <= len(raw). The header runs
    from header_start to body_start and includes the blank line that ends it; the body
    of a part inside a multipart excludes the CRLF that precedes the next boundary
    (except after a nested close delimiter, see _ends_closed).
    String fields hold the raw header bytes decoded as latin-1 (lossless), so IMAP can
    give them back byte for byte.
    """

    header_start: int  # offset of the first header byte
    body_start: int  # offset of the first body byte (= end of header incl. blank line)
    body_end: int  # offset one past the last body byte
    maintype: str = "text"  # lowercase; RFC 2045 default text/plain
    subtype: str = "plain"
    params: dict[str, str] = field(default_factory=dict)  # Content-Type params, names lowercase; text/* has a charset
    encoding: str = "7bit"  # Content-Transfer-Encoding, lowercase; 7bit when absent or malformed
    content_id: str | None = None  # Content-ID value
    description: str | None = None  # Content-Description value (raw, may hold encoded words)
    md5: str | None = None  # Content-MD5 value
    disposition: str | None = None  # Content-Disposition type, lowercase ("inline", "attachment")
    disposition_params: dict[str, str] = field(default_factory=dict)  # its parameters
    language: list[str] = field(default_factory=list)  # Content-Language tags
    location: str | None = None  # Content-Location value
    lines: int = 0  # CRLF count of the body, for text/* and message/rfc822 parts
    children: list[Part] = field(default_factory=list)  # sub-parts of a multipart
    message: Part | None = None  # the encapsulated message of a message/rfc822 part
    opaque: bool = False  # True when the limits stopped parsing this multipart/message part

    @property
    def size(self) -> int:
        """Octets of the body, as IMAP reports it."""
        return self.body_end - self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.maintype == "multipart"

    @property
    def filename(self) -> str | None:
        """The decoded file name (Content-Disposition filename, else Content-Type name),
        for attachment policies and display; RFC 2231 and RFC 2047 forms are decoded."""
        return param_text(self.disposition_params, "filename") or param_text(self.params, "name")

    def to_dict(self) -> dict:
        d = dict(zip(_SCALARS, _scalars(self)))
        d["children"] = [child.to_dict() for child in self.children]
        d["message"] = self.message.to_dict() if self.message is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Part:
        part = cls(**{name: d[name] for name in _SCALARS})
        part.children = [cls.from_dict(child) for child in d["children"]]
        part.message = cls.from_dict(d["message"]) if d["message"] is not None else None
        return part


_SCALARS = (
    "header_start", "body_start", "body_end", "maintype", "subtype", "params", "encoding",
    "content_id", "description", "md5", "disposition", "disposition_params", "language",
    "location", "lines", "opaque",
)
_scalars = operator.attrgetter(*_SCALARS)


def parse_structure(raw: bytes, fields: list[tuple[str, bytes]] | None = None, crlf: bool = False) -> Part:
    """Parse the MIME tree of a whole message. Never raises.

    ``fields``: the message's top-level ``header_fields``, when the caller has them already.
    ``crlf``: the caller has checked that no CR or LF stands alone (normalize_crlf); the
    lines of a part are then counted as LFs, which bytes.count finds several times faster
    than CRLFs (no part starts between a CR and its LF, so the counts are equal).
    """
    return _Parser(raw, crlf).part(0, len(raw), 0, ("text", "plain"), fields)


def header_end(raw: bytes) -> int:
    """Offset just past the blank line that ends the message's header (its root body_start)."""
    return _header_end(raw, 0, len(raw))


class _Parser:
    def __init__(self, raw: bytes, crlf: bool = False):
        self.raw = raw
        self.line_end = b"\n" if crlf else b"\r\n"
        self.count = 0  # parts created so far, against MAX_PARTS

    def part(self, start: int, end: int, depth: int, default: tuple[str, str],
             fields: list[tuple[str, bytes]] | None = None) -> Part:
        """Parse the entity occupying raw[start:end] (``fields``: its header_fields, if known)."""
        self.count += 1
        raw = self.raw
        body_start = _header_end(raw, start, end)
        part = Part(start, body_start, end)
        _read_content_headers(part, header_fields(raw[start:body_start]) if fields is None else fields, default)
        # Only message/rfc822 is an encapsulated message in IMAP4rev1's grammar
        # (media-message); message/global (RFC 6532) stays a basic part, as in Dovecot.
        nested = part.is_multipart or (part.maintype == "message" and part.subtype == "rfc822")
        if nested and (depth >= MAX_DEPTH or self.count >= MAX_PARTS):
            # RFC 2046 gives no limit; we stop looking inside, Dovecot-style
            part.maintype, part.subtype, part.opaque = "application", "octet-stream", True
        elif part.is_multipart:
            child_default = ("message", "rfc822") if part.subtype == "digest" else ("text", "plain")
            part.children = self.multipart(part, depth, child_default)
        elif nested:
            part.message = self.part(body_start, end, depth + 1, ("text", "plain"))
        if part.maintype == "text" or part.message is not None:
            part.lines = raw.count(self.line_end, body_start, end)
        return part

    def multipart(self, part: Part, depth: int, default: tuple[str, str]) -> list[Part]:
        """Split a multipart body at its boundary lines (RFC 2046 §5.1.1)."""
        boundary = part.params.get("boundary")
        if not boundary or part.body_start == part.body_end:
            return []
        raw = self.raw
        end = part.body_end
        delimiter = b"\r\n--" + boundary.encode("latin-1")
        # The CRLF of the blank line after the header lets a boundary on the first body
        # line be found like any other ("the CRLF preceding the boundary delimiter line
        # is conceptually attached to the boundary").
        pos = part.body_start - 2
        children: list[Part] = []
        child_start = -1  # start of the part being collected; -1 in preamble/epilogue
        while self.count < MAX_PARTS:
            at = raw.find(delimiter, pos, end)
            if at < 0:
                break
            after = at + len(delimiter)
            closing = raw.startswith(b"--", after, end)
            rest = after + 2 if closing else after
            eol = raw.find(b"\r\n", rest, end)
            line_end = end if eol < 0 else eol
            if raw[rest:line_end].strip(b" \t"):
                pos = after  # a longer string that starts like the boundary
                continue
            if child_start >= 0:
                child = self.part(min(child_start, at), at, depth + 1, default)
                if _ends_closed(raw, child, at):
                    _move_end(child, at, at + 2)
                children.append(child)
            if closing or eol < 0:
                child_start = -1
                break
            child_start = eol + 2
            pos = eol  # an empty part: its end CRLF is also this line's end
        if child_start >= 0 and self.count < MAX_PARTS:
            # no closing delimiter: the last part runs to the end
            children.append(self.part(child_start, end, depth + 1, default))
        return children


def _ends_closed(raw: bytes, part: Part, end: int) -> bool:
    """True when the last line of `part` (ending at `end`) is the close delimiter of a
    multipart that `part` is or ends with.

    Dovecot, the reference our users' clients know, counts the CRLF after such a line
    into the part (RFC 2046's grammar would give it to the next delimiter), so that
    e.g. a multipart/alternative followed by an attachment is 2 octets longer and
    BODY[1] ends with "--boundary--" CRLF. We follow it: BODYSTRUCTURE sizes and
    sections then match Dovecot's byte for byte.
    """
    while True:
        if part.message is not None:
            part = part.message
        elif part.is_multipart and part.params.get("boundary"):
            close = b"--" + part.params["boundary"].encode("latin-1") + b"--"
            stop = end
            while stop > part.body_start and raw[stop - 1] in b" \t":  # transport padding
                stop -= 1
            start = stop - len(close)
            if start >= part.body_start and raw.startswith(close, start, stop) and (
                start == part.body_start or raw.startswith(b"\r\n", start - 2, start)
            ):
                return True
            if not part.children or part.children[-1].body_end != end:
                return False
            part = part.children[-1]
        else:
            return False


def _move_end(part: Part | None, old: int, new: int) -> None:
    """Move the end of `part`, and of the parts inside it that end where it ends."""
    while part is not None and part.body_end == old:
        part.body_end = new
        if part.maintype == "text" or part.message is not None:
            part.lines += 1  # the added octets are one CRLF
        part = part.message if part.message is not None else (part.children[-1] if part.children else None)


def _header_end(raw: bytes, start: int, end: int) -> int:
    """Offset just past the blank line ending the header at raw[start:end], or end."""
    if raw.startswith(b"\r\n", start, end):
        return start + 2
    blank = raw.find(b"\r\n\r\n", start, end)
    return end if blank < 0 else blank + 4


def _read_content_headers(part: Part, fields: list[tuple[str, bytes]], default: tuple[str, str]) -> None:
    content = first_values(fields)

    def text(key: str) -> str | None:
        value = content.get(key)
        return None if value is None else value.decode("latin-1")

    part.maintype, part.subtype = default
    ctype = text("content-type")
    if ctype is not None:
        head, params = parse_mime_value(ctype)
        maintype, _, subtype = head.partition("/")
        if maintype and subtype:
            part.maintype, part.subtype, part.params = maintype, subtype, params
    if part.maintype == "text" and "charset" not in part.params:
        # RFC 2045 §5.2 default; Dovecot shows it after the parameters that were given
        part.params = {**part.params, "charset": "us-ascii"}
    cte = (text("content-transfer-encoding") or "").strip().lower()
    if cte and set(cte) <= _CTE_CHARS:
        part.encoding = cte
    part.content_id = text("content-id")
    part.description = text("content-description")
    part.md5 = text("content-md5")
    part.location = text("content-location")
    disposition = text("content-disposition")
    if disposition is not None:
        head, params = parse_mime_value(disposition)
        if head:
            part.disposition, part.disposition_params = head, params
    language = text("content-language")
    if language is not None:
        part.language = [tag.strip() for tag in _strip_comments(language).split(",") if tag.strip()]


def _strip_comments(value: str) -> str:
    out = []
    depth = 0
    for c in value:
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(c)
    return "".join(out)

