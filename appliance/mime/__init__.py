"""MIME analysis: a message is parsed once, at arrival, and never again.

The store calls `analyze(raw)` when a message is delivered or appended and keeps the
returned `MessageInfo` (as JSON) beside the raw bytes. IMAP FETCH (ENVELOPE, BODY,
BODYSTRUCTURE, BODY[section], BINARY), SEARCH, POP3 and the TUI work from that record
and from byte offsets into the raw message, so no request re-parses MIME.

The package is pure (no sockets, no SQL) and every function takes bytes and returns
bytes or plain data. Malformed MIME never raises; nesting depth and part count are
bounded (structure.MAX_DEPTH, structure.MAX_PARTS) and content past the bounds is
opaque. Boundaries are found with bytes.find; the stdlib `email` package is used only
to decode header words and dates, never to build message trees of large bodies.

Modules: `headers` (fields, encoded words, parameters, addresses, and `author`: who a
message is from, the one answer for ENVELOPE, the TUI, DMARC, Sieve and DKIM signing),
`structure` (the Part tree), `imapformat` (ENVELOPE/BODYSTRUCTURE text), `sections`
(BODY[...] and BINARY[...] cuts), `info` (analyze and the stored record), `sortkeys` (what
IMAP SORT and THREAD compare, stored beside the record).
"""

from .headers import Author, author, header_fields, mailboxes
from .info import MessageInfo, analyze, body_text, message_id, normalize_crlf, prepend_header, subject
from .sections import UnknownEncoding, decoded, find_part, section
from .structure import MAX_DEPTH, MAX_PARTS, Part, header_end

__all__ = [
    "Author",
    "author",
    "mailboxes",
    "prepend_header",
    "MAX_DEPTH",
    "MAX_PARTS",
    "MessageInfo",
    "Part",
    "UnknownEncoding",
    "analyze",
    "body_text",
    "decoded",
    "find_part",
    "header_end",
    "header_fields",
    "message_id",
    "normalize_crlf",
    "section",
    "subject",
]
