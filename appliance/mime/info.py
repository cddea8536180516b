"""analyze(): everything IMAP, POP3, SEARCH and the TUI need from a message, in one pass."""

from __future__ import annotations

import dataclasses

import html
import json
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from .headers import (decode_charset, decode_words, display, display_addresses, first_values, from_addresses,
                      header_fields, to_text)
from .imapformat import body_structures, envelope
from .sections import UnknownEncoding, transfer_decode
from .structure import Part, header_end, parse_structure

SEARCH_TEXT_LIMIT = 1_000_000  # characters of body text that SEARCH BODY/TEXT and the filters see

# Version 2 no longer stores the body text (version 1's "search_text" is ignored): it is
# as big as the message itself, and ``body_text`` derives it from the blob when needed.
_JSON_VERSION = 2
_JSON_VERSIONS_READ = (1, 2)
# made once: json.dumps with options builds a new encoder per call
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"))


@dataclass
class MessageInfo:
    """The parsed form of one message, computed once at arrival and stored beside it.

    The three IMAP renderings carry their outer parentheses, ready to follow the FETCH
    item name (b"ENVELOPE " + info.envelope). Text fields are decoded for display and
    search: RFC 2047 words, 8-bit UTF-8 (latin-1 when not valid UTF-8).
    """

    envelope: bytes  # IMAP ENVELOPE (RFC 3501 §7.4.2), rendered
    body: bytes  # IMAP BODY: BODYSTRUCTURE without extension data
    bodystructure: bytes  # IMAP BODYSTRUCTURE with extension data
    root: Part  # the MIME tree, as offsets into the raw message
    subject: str  # decoded Subject ("" when absent)
    from_: str  # decoded From (every From field's addresses, as ENVELOPE lists them), e.g. "Alice <a@x.org>"
    to: str  # decoded To
    cc: str  # decoded Cc
    date: datetime | None  # the Date header (SENTBEFORE/SENTON/SENTSINCE); None when absent or unreadable
    message_id: str  # Message-ID as written, e.g. "<id@host>"
    header_search: str  # decoded, unfolded top-level header, one "Name: value\n" per field

    def to_json(self) -> str:
        """Serialise for storage; MessageInfo.from_json(info.to_json()) == info."""
        return _JSON_ENCODER.encode({
            "v": _JSON_VERSION,
            "envelope": self.envelope.decode("latin-1"),
            "body": self.body.decode("latin-1"),
            "bodystructure": self.bodystructure.decode("latin-1"),
            "root": self.root.to_dict(),
            "subject": self.subject,
            "from": self.from_,
            "to": self.to,
            "cc": self.cc,
            "date": self.date.isoformat() if self.date is not None else None,
            "message_id": self.message_id,
            "header_search": self.header_search,
        })

    @classmethod
    def from_json(cls, text: str) -> MessageInfo:
        d = json.loads(text)
        if d.get("v") not in _JSON_VERSIONS_READ:
            raise ValueError(f"unknown MessageInfo version {d.get('v')!r}")
        return cls(
            envelope=d["envelope"].encode("latin-1"),
            body=d["body"].encode("latin-1"),
            bodystructure=d["bodystructure"].encode("latin-1"),
            root=Part.from_dict(d["root"]),
            subject=d["subject"],
            from_=d["from"],
            to=d["to"],
            cc=d["cc"],
            date=datetime.fromisoformat(d["date"]) if d["date"] is not None else None,
            message_id=d["message_id"],
            header_search=d["header_search"],
        )


def normalize_crlf(raw: bytes) -> bytes:
    """Make every line end in CRLF: bare LF and bare CR become CRLF."""
    if raw.count(b"\r") == raw.count(b"\n") == raw.count(b"\r\n"):
        return raw
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def analyze(raw: bytes, crlf: bool = False, fields: list[tuple[str, bytes]] | None = None) -> MessageInfo:
    """Parse a message (CRLF line endings) once, for storage. Never raises on bad MIME.

    ``crlf``: raw came out of normalize_crlf (see parse_structure). ``fields``: its
    top-level ``header_fields``, when the caller has read them already.
    """
    if fields is None:
        fields = header_fields(raw[:header_end(raw)])  # the root part's header, read once
    root = parse_structure(raw, fields, crlf)
    values = first_values(fields)
    body, structure = body_structures(raw, root)

    def addresses(name: str) -> str:
        value = values.get(name)
        return "" if value is None else _one_line(display_addresses(value))

    return MessageInfo(
        envelope=envelope(fields),
        body=b"(" + body + b")",
        bodystructure=b"(" + structure + b")",
        root=root,
        subject=subject(values),
        from_=_one_line(display(from_addresses(fields))),
        to=addresses("to"),
        cc=addresses("cc"),
        date=_date(values.get("date")),
        message_id=message_id(values),
        header_search="".join(f"{name}: {_one_line(decode_words(value))}\n" for name, value in fields),
    )


def subject(values: dict[str, bytes]) -> str:
    """The Subject as every reader shows it, given first_values() of a header: decoded, one line."""
    return _one_line(decode_words(values.get("subject", b"")))


def message_id(values: dict[str, bytes]) -> str:
    """The Message-ID as written (never decoded: RFC 5322 §3.6.4 allows no encoded word), e.g. "<id@host>"."""
    return to_text(values.get("message-id", b""))


# The top-level fields analyze() derives anything from besides header_search. A field
# prepended at delivery that is none of these (Received, Return-Path, the filters'
# Authentication-Results and X-Spam-*) moves offsets and adds to header_search, no more.
_DERIVED_FIELDS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc", "subject", "date", "message-id",
                             "in-reply-to", "mime-version"})
_FIELD_START = re.compile(rb"[!-9;-~]+:")


def prepend_header(info: MessageInfo, prefix: bytes,
                   fields: list[tuple[str, bytes]] | None = None) -> MessageInfo | None:
    """The analysis of ``prefix + raw``, given ``info = analyze(raw)``, without parsing again.

    ``prefix`` must be whole header fields (CRLF-terminated) that change nothing analyze()
    derives; otherwise None, and the caller analyses the new message itself. ``fields``:
    ``header_fields(prefix)``, when the caller has read them already.
    """
    if not prefix:
        return info
    lines = prefix.split(b"\r\n")
    if lines[-1] != b"" or any(b"\r" in l or b"\n" in l for l in lines[:-1]):
        return None
    for number, line in enumerate(lines[:-1]):
        continuation = line[:1] in (b" ", b"\t")
        if (continuation and number == 0) or (not continuation and not _FIELD_START.match(line)):
            return None
    if fields is None:
        fields = header_fields(prefix)
    if any(name.lower() in _DERIVED_FIELDS or name.lower().startswith("content-") for name, _ in fields):
        return None
    shift = len(prefix)
    return dataclasses.replace(
        info,
        root=_shifted(info.root, shift, root=True),
        header_search="".join(f"{name}: {_one_line(decode_words(value))}\n" for name, value in fields)
        + info.header_search,
    )


def _shifted(part: Part, shift: int, root: bool = False) -> Part:
    return dataclasses.replace(
        part,
        header_start=part.header_start if root else part.header_start + shift,
        body_start=part.body_start + shift,
        body_end=part.body_end + shift,
        children=[_shifted(child, shift) for child in part.children],
        message=_shifted(part.message, shift) if part.message is not None else None,
    )


def _one_line(text: str) -> str:
    # an encoded word may hide a line break (=0A); one field must stay one line, for
    # the TUI's rows and for header_search's "Name: value" lines
    if "\n" in text or "\r" in text:
        return text.replace("\r", " ").replace("\n", " ")
    return text


def _date(value: bytes | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_TAG = re.compile(r"<[^<>]*>")  # [^<>]: a stray "<" must not make this quadratic


def body_text(raw: bytes, info: MessageInfo) -> str:
    """Decoded text of every text/* part, in order, up to SEARCH_TEXT_LIMIT characters:
    what SEARCH BODY and the spam filters read. ``info`` is the analysis of ``raw``."""
    out: list[str] = []
    budget = SEARCH_TEXT_LIMIT
    stack = [info.root]
    while stack and budget > 0:
        part = stack.pop()
        if part.children:
            stack.extend(reversed(part.children))
        elif part.message is not None:
            stack.append(part.message)
        elif part.maintype == "text":
            body = raw[part.body_start:part.body_end]
            try:
                body = transfer_decode(body, part.encoding)
            except UnknownEncoding:
                pass  # search the bytes as they are
            text = decode_charset(body[:budget * 4], part.params.get("charset", "us-ascii"))
            if part.subtype == "html":
                text = html.unescape(_TAG.sub(" ", text))
            out.append(text[:budget])
            budget -= len(out[-1]) + 1
    return "\n".join(out)
