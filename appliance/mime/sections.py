"""Cutting IMAP body sections out of the raw message, using the stored Part tree.

RFC 3501 §6.4.5 (BODY[section]) and RFC 3516 (BINARY[section]). Nothing is parsed
again: the offsets recorded at arrival are enough.
"""

from __future__ import annotations

import binascii
from typing import TYPE_CHECKING

from .headers import raw_fields
from .structure import Part

if TYPE_CHECKING:
    from .info import MessageInfo


class UnknownEncoding(ValueError):
    """The part's Content-Transfer-Encoding cannot be decoded (IMAP: NO [UNKNOWN-CTE])."""


def _message_parts(message: Part) -> list[Part]:
    """What part numbers directly inside a message refer to (RFC 3501 §6.4.5):
    the parts of a multipart message, or else the message's single body as part 1."""
    return message.children if message.is_multipart else [message]


def _subparts(part: Part) -> list[Part]:
    if part.is_multipart:
        return part.children
    if part.message is not None:
        return _message_parts(part.message)
    return []


def find_part(root: Part, path: tuple[int, ...]) -> Part | None:
    """The part that a section path such as (4, 2, 1) names, or None if there is none."""
    parts = _message_parts(root)
    part = None
    for number in path:
        if not 1 <= number <= len(parts):
            return None
        part = parts[number - 1]
        parts = _subparts(part)
    return part


def _header_lines(header: bytes, names: list[str], exclude: bool) -> bytes:
    wanted = {name.lower() for name in names}
    out = []
    for name, field in raw_fields(header):
        if (name.lower() in wanted) != exclude:
            out.append(field if field.endswith(b"\r\n") else field.rstrip(b"\r\n") + b"\r\n")
    # RFC 3501: "the subset ... includes ... the delimiting blank line"
    out.append(b"\r\n")
    return b"".join(out)


def section(
    raw: bytes, info: MessageInfo, path: tuple[int, ...], text: str | None, fields: list[str] | None = None
) -> bytes:
    """The bytes of BODY[section] (RFC 3501 §6.4.5), before any <partial> cut.

    Args:
        raw: the message as stored (CRLF line endings), the same bytes analyze() saw.
        info: what analyze() returned for raw.
        path: part numbers, e.g. (3, 1); () for the whole message.
        text: None (the part's body, or the whole message for path ()), "HEADER",
            "TEXT", "MIME", "HEADER.FIELDS" or "HEADER.FIELDS.NOT" (any case).
        fields: field names for HEADER.FIELDS and HEADER.FIELDS.NOT.

    Returns:
        The section's bytes; b"" for a part or specifier that does not exist.
    """
    text = text.upper() if text else None
    if path:
        part = find_part(info.root, path)
        if part is None:
            return b""
        if text is None:
            return raw[part.body_start:part.body_end]
        if text == "MIME":
            return raw[part.header_start:part.body_start]
        # HEADER / TEXT / HEADER.FIELDS of a part: only a message/rfc822 part has them
        message = part.message
        if message is None:
            return b""
    else:
        message = info.root
        if text is None:
            return raw
        if text == "MIME":
            return b""
    header = raw[message.header_start:message.body_start]
    if text == "HEADER":
        return header
    if text == "TEXT":
        return raw[message.body_start:message.body_end]
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return _header_lines(header, fields or [], exclude=text.endswith(".NOT"))
    return b""


def decoded(raw: bytes, info: MessageInfo, path: tuple[int, ...]) -> bytes:
    """BINARY[section] (RFC 3516): the part's content with its transfer encoding undone.

    The whole message (path ()), multiparts and message parts are returned as stored.
    Returns b"" for a part that does not exist. Raises UnknownEncoding for an encoding
    other than 7bit, 8bit, binary, base64 and quoted-printable.
    """
    if not path:
        return raw
    part = find_part(info.root, path)
    if part is None:
        return b""
    body = raw[part.body_start:part.body_end]
    if part.is_multipart or part.message is not None or part.opaque:
        return body
    return transfer_decode(body, part.encoding)


def transfer_decode(body: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding, leniently (stray characters are skipped)."""
    if encoding in ("7bit", "8bit", "binary"):
        return body
    if encoding == "base64":
        return _base64(body)
    if encoding == "quoted-printable":
        return _quoted_printable(body)
    raise UnknownEncoding(encoding)


def _quoted_printable(body: bytes) -> bytes:
    """RFC 2045 §6.7: whitespace at the end of a line was added in transport and goes (rule 3);
    a line ending in "=" (after that) is a soft line break and joins the next (rule 5)."""
    out = []
    for line in body.splitlines(keepends=True):
        text = line.rstrip(b"\r\n")
        ending = line[len(text):]
        text = text.rstrip(b" \t")
        if text.endswith(b"="):
            out.append(binascii.a2b_qp(text[:-1]))
        else:
            out.append(binascii.a2b_qp(text) + ending)
    return b"".join(out)


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_B64 = bytes(c for c in range(256) if c not in _B64_ALPHABET)


def _base64(body: bytes) -> bytes:
    # Drop line breaks, padding and garbage, then re-pad: decoders in the field accept
    # what they can, and so do we.
    clean = body.translate(None, _NOT_B64)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    clean += b"=" * (-len(clean) % 4)
    return binascii.a2b_base64(clean)
