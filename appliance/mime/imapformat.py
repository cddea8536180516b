"""IMAP renderings of a parsed message: ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 §7.4.2).

Output is the exact bytes to put after the FETCH item name. Values come from the raw
header bytes: encoded words are not decoded (the client does that), 8-bit bytes go out
unchanged inside a literal. Layout choices (lowercase types, a charset for every text
part, Content-Language as a list) follow what Dovecot answers, so clients that cache
BODYSTRUCTURE see familiar text.
"""

from __future__ import annotations

import functools
import re

from .headers import Address, first_values, from_addresses, header_fields, parse_addresses
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
    if value.__class__ is str:
        return _nstring_text(value) if len(value) <= 64 else _nstring(value.encode("latin-1"))
    return _nstring(value)


# BODYSTRUCTURE's str values (types, parameter names and values, encodings) are few and
# recur in nearly every message
@functools.lru_cache(maxsize=1024)
def _nstring_text(value: str) -> bytes:
    return _nstring(value.encode("latin-1"))


def _nstring(value: bytes) -> bytes:
    if _NEEDS_LITERAL.search(value):
        # RFC 3501 literal = "{" number "}" CRLF *CHAR8, and CHAR8 excludes NUL
        value = value.replace(b"\x00", "\ufffd".encode())
        return b"{%d}\r\n" % len(value) + value
    if b"\\" in value or b'"' in value:
        value = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + value + b'"'


def _address(addr: Address) -> bytes:
    mailbox, host = addr.mailbox, addr.host
    if host is not None:
        # A NIL host would mean "group"; Dovecot's placeholders keep the address an address.
        mailbox = mailbox or "MISSING_MAILBOX"
        host = host or "MISSING_DOMAIN"
    return b"(%s %s %s %s)" % (nstring(addr.name), nstring(addr.route), nstring(mailbox), nstring(host))


def _address_list(value: bytes | None) -> bytes:
    if value is None:
        return NIL
    if len(value) <= 512:
        return _address_list_cached(value)
    return _render_address_list(value)


# ENVELOPE renders From up to three times (from, and the sender and reply-to it stands
# in for), and senders recur across messages
@functools.lru_cache(maxsize=1024)
def _address_list_cached(value: bytes) -> bytes:
    return _render_address_list(value)


def _render_address_list(value: bytes) -> bytes:
    return _render(parse_addresses(value))


def _render(addresses: tuple[Address, ...]) -> bytes:
    if not addresses:
        return NIL
    return b"(" + b"".join(_address(a) for a in addresses) + b")"


def envelope(fields: list[tuple[str, bytes]]) -> bytes:
    """ENVELOPE of a message, given its header_fields() (RFC 3501 §7.4.2).

    The from member lists the addresses of every From field (headers.from_addresses): a
    second From field is shown to the reader as DMARC sees it, not hidden behind the first.
    """
    values = first_values(fields)
    authors = _render(from_addresses(fields))

    def addresses(name: str) -> bytes:
        value = values.get(name)
        # "If the Sender or Reply-To lines are absent ... or are present but empty, the
        # server sets the corresponding member of the envelope to be the same value as
        # the from member"
        if name == "from" or (not value and name in ("sender", "reply-to")):
            return authors
        return _address_list(value)

    items = [
        nstring(values.get("date")),
        nstring(values.get("subject")),
        addresses("from"),
        addresses("sender"),
        addresses("reply-to"),
        addresses("to"),
        addresses("cc"),
        addresses("bcc"),
        nstring(values.get("in-reply-to")),
        nstring(values.get("message-id")),
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


def body_structures(raw: bytes, part: Part) -> tuple[bytes, bytes]:
    """BODY and BODYSTRUCTURE of `part`, without the outer parentheses.

    Both are built in one walk, since BODY is BODYSTRUCTURE without extension data:
    e.g. (b'"text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1',
          b'"text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL').
    """
    if part.is_multipart:
        # body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
        pairs = [body_structures(raw, child) for child in part.children]
        if not pairs:
            pairs = [(_EMPTY_BODY, _EMPTY_BODY + b" NIL NIL NIL NIL")]
        subtype = b" " + nstring(part.subtype)
        body = b"".join([b"(" + b + b")" for b, _ in pairs]) + subtype
        structure = b"".join([b"(" + x + b")" for _, x in pairs]) + subtype
        # body-ext-mpart = body-fld-param [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]
        extension = [_params(part.params), _disposition(part), _language(part), nstring(part.location)]
        return body, structure + b" " + b" ".join(extension)
    # body-type-1part = (body-type-basic / body-type-msg / body-type-text) [SP body-ext-1part]
    fields = b" ".join([
        nstring(part.maintype), nstring(part.subtype), _params(part.params),
        nstring(part.content_id), nstring(part.description), nstring(part.encoding),
        b"%d" % part.size,
    ])
    body = structure = fields
    if part.message is not None:
        # body-type-msg = media-message SP body-fields SP envelope SP body SP body-fld-lines
        message = part.message
        env = envelope(header_fields(raw[message.header_start:message.body_start]))
        inner_body, inner_structure = body_structures(raw, message)
        lines = b"%d" % part.lines
        body = b"%s %s (%s) %s" % (fields, env, inner_body, lines)
        structure = b"%s %s (%s) %s" % (fields, env, inner_structure, lines)
    elif part.maintype == "text":
        body = structure = b"%s %d" % (fields, part.lines)
    # body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]
    extension = [nstring(part.md5), _disposition(part), _language(part), nstring(part.location)]
    return body, structure + b" " + b" ".join(extension)
