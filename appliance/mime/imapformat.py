"""IMAP renderings of a parsed message: ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 §7.4.2).

Output is the exact bytes to put after the FETCH item name. Values come from the raw
header bytes: encoded words are not decoded (the client does that), 8-bit bytes go out
unchanged inside a literal. Layout choices (lowercase types, a charset for every text
part, Content-Language as a list) follow what Dovecot answers, so clients that cache
BODYSTRUCTURE see familiar text.
"""

from __future__ import annotations

import re

from .headers import Address, first, header_fields, parse_addresses
from .structure import Part

NIL = b"NIL"
_NEEDS_LITERAL = re.compile(rb"[\x00\r\n\x80-\xff]")

# RFC 3501 grammar: body-type-mpart = 1*body SP media-subtype. A multipart in which no
# part was found still needs one body; Dovecot shows an empty text part, so do we.
_EMPTY_BODY = b'"text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0'


def nstring(value: bytes | str | None) -> bytes:
    """RFC 3501 nstring: NIL, a quoted string, or a literal when quoting cannot carry it."""
    if value is None:
        return NIL
    if isinstance(value, str):
        value = value.encode("latin-1")
    if _NEEDS_LITERAL.search(value):
        return b"{%d}\r\n" % len(value) + value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _address(addr: Address) -> bytes:
    return b"(%s %s %s %s)" % (nstring(addr.name), nstring(addr.route), nstring(addr.mailbox), nstring(addr.host))


def _address_list(value: bytes | None) -> bytes:
    if value is None:
        return NIL
    addresses = parse_addresses(value)
    if not addresses:
        return NIL
    return b"(" + b"".join(_address(a) for a in addresses) + b")"


def envelope(header: bytes) -> bytes:
    """ENVELOPE of a message, given its header block (RFC 3501 §7.4.2)."""
    fields = header_fields(header)
    sender_default = first(fields, "from")

    def addresses(name: str) -> bytes:
        value = first(fields, name)
        # "If the Sender or Reply-To lines are absent ... or are present but empty, the
        # server sets the corresponding member of the envelope to be the same value as
        # the from member"
        if name in ("sender", "reply-to") and not value:
            value = sender_default
        return _address_list(value)

    items = [
        nstring(first(fields, "date")),
        nstring(first(fields, "subject")),
        addresses("from"),
        addresses("sender"),
        addresses("reply-to"),
        addresses("to"),
        addresses("cc"),
        addresses("bcc"),
        nstring(first(fields, "in-reply-to")),
        nstring(first(fields, "message-id")),
    ]
    return b"(" + b" ".join(items) + b")"


def _params(params: dict[str, str]) -> bytes:
    if not params:
        return NIL
    return b"(" + b" ".join(nstring(k) + b" " + nstring(v) for k, v in params.items()) + b")"


def _disposition(part: Part) -> bytes:
    if part.disposition is None:
        return NIL
    return b"(" + nstring(part.disposition) + b" " + _params(part.disposition_params) + b")"


def _language(part: Part) -> bytes:
    if not part.language:
        return NIL
    return b"(" + b" ".join(nstring(tag) for tag in part.language) + b")"


def body_structure(raw: bytes, part: Part, extended: bool) -> bytes:
    """BODYSTRUCTURE (extended=True) or BODY (extended=False) of `part`, without the
    outer parentheses, e.g. b'"text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1'.
    """
    if part.is_multipart:
        # RFC 3501: body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
        bodies = [body_structure(raw, child, extended) for child in part.children] or [_EMPTY_BODY + (b" NIL NIL NIL NIL" if extended else b"")]
        out = b"".join(b"(" + body + b")" for body in bodies) + b" " + nstring(part.subtype)
        if extended:
            # body-ext-mpart = body-fld-param [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]
            out += b" " + b" ".join([_params(part.params), _disposition(part), _language(part), nstring(part.location)])
        return out
    # body-type-1part = (body-type-basic / body-type-msg / body-type-text) [SP body-ext-1part]
    items = [
        nstring(part.maintype), nstring(part.subtype), _params(part.params),
        nstring(part.content_id), nstring(part.description), nstring(part.encoding),
        b"%d" % part.size,
    ]
    if part.message is not None:
        # body-type-msg = media-message SP body-fields SP envelope SP body SP body-fld-lines
        message = part.message
        items.append(envelope(raw[message.header_start:message.body_start]))
        items.append(b"(" + body_structure(raw, message, extended) + b")")
        items.append(b"%d" % part.lines)
    elif part.maintype == "text":
        items.append(b"%d" % part.lines)
    if extended:
        # body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]
        items += [nstring(part.md5), _disposition(part), _language(part), nstring(part.location)]
    return b" ".join(items)
