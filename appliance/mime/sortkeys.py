"""What IMAP SORT and THREAD compare (RFC 5256, RFC 5957), computed once at arrival.

The store keeps one ``SortKeys`` row per blob beside its analysis, so a SORT or THREAD
of a big mailbox reads a few short columns and never a message's header again.
Strings are kept as i;unicode-casemap keys (RFC 5051): two keys compare as their
strings would under that collation, with Python's (and SQLite's) plain ordering.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone

from .headers import decode_words, first_values, header_fields, parse_addresses
from .info import _date
from .structure import header_end


@dataclass(frozen=True)
class SortKeys:
    """One message's SORT and THREAD keys; strings are casemap keys ("" when absent)."""

    sent: float | None  # the Date header as a UTC timestamp; None: use INTERNALDATE (RFC 5256 §3)
    subject: str  # base subject (RFC 5256 §2.1)
    reply: bool  # the subject had a reply or forward marker (RFC 5256 THREAD=REFERENCES step 6)
    from_: str  # addr-mailbox of the first From address (RFC 5256 §3, SORT FROM)
    to: str  # addr-mailbox of the first To address
    cc: str  # addr-mailbox of the first Cc address
    display_from: str  # RFC 5957 §3: display name of the first From address, else its address
    display_to: str  # the same for To
    message_id: str  # the msg-id inside its angle brackets, "" when absent
    references: tuple[str, ...]  # References, else the first msg-id of In-Reply-To (RFC 5256 §4)


@functools.lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    # RFC 5051 §2 step 1: the simple titlecase mapping (one character to one character;
    # where Unicode only has a longer full mapping, such as "ß", the character stays)
    title = char.title()
    return title if len(title) == 1 else char


def casemap(text: str) -> str:
    """The i;unicode-casemap key of ``text`` (RFC 5051 §2): titlecase, then fully decomposed.

    Keys compare as octet strings of UTF-8, which is the order of their code points.
    """
    if text.isascii():
        return text.upper()  # titlecase of ASCII is upper case, and ASCII does not decompose
    return unicodedata.normalize("NFD", "".join(map(_fold_char, text)))


# RFC 5256 §5 (grammar) and §2.1 (the steps). Matching is case-insensitive.
_WSP_RUN = re.compile(r"[ \t\r\n]+")
_TRAILER = re.compile(r"(?:[ \t]|\(fwd\))$", re.I)  # subj-trailer = "(fwd)" / WSP
_BLOB = r"\[[^\[\]]*\][ \t]*"  # subj-blob = "[" *BLOBCHAR "]" *WSP
_REFWD = r"(?:re|fwd?)[ \t]*(?:" + _BLOB + r")?:"  # subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_LEADER = re.compile(r"(?:" + _BLOB + r")*" + _REFWD + r"|[ \t]", re.I)  # subj-leader = (*subj-blob subj-refwd) / WSP
_BLOB_PREFIX = re.compile(_BLOB)
_FWD_HEADER = "[fwd:"  # subj-fwd-hdr; subj-fwd-trl is "]"


def base_subject(subject: str) -> tuple[str, bool]:
    """(base subject, whether a reply/forward marker was removed) per RFC 5256 §2.1.

    ``subject`` is already decoded (step 1's RFC 2047 decoding is done at arrival).
    """
    text = _WSP_RUN.sub(" ", subject)  # step 1: tabs and line breaks become spaces, runs collapse
    reply = False
    while True:
        while True:  # step 2: remove trailers
            match = _TRAILER.search(text)
            if not match:
                break
            reply = reply or match.group().lower() == "(fwd)"
            text = text[:match.start()]
        while True:  # steps 3 to 5: leaders and blobs, until neither is left
            match = _LEADER.match(text)
            if match:
                reply = reply or match.group() not in (" ", "\t")
                text = text[match.end():]
                continue
            match = _BLOB_PREFIX.match(text)
            if match and match.end() < len(text):  # step 4: only if something is left after it
                text = text[match.end():]
                continue
            break
        # step 6: a "[fwd: ...]" wrapper is a forward; unwrap it and start again at step 2
        if text[:len(_FWD_HEADER)].lower() == _FWD_HEADER and text.endswith("]"):
            text = text[len(_FWD_HEADER):-1]
            reply = True
            continue
        return text, reply


_MSG_ID = re.compile(r"<([^<>]*)>")
_SPACE = re.compile(r"\s+")


def message_ids(value: str) -> list[str]:
    """The msg-ids of a Message-ID, In-Reply-To or References value, without angle brackets.

    Lenient as RFC 5256 §4 asks: whatever is between angle brackets counts; whitespace
    inside a msg-id (folding) is removed.
    """
    return [_SPACE.sub("", m) for m in _MSG_ID.findall(value) if m.strip()]


def _first_mailbox(value: bytes | None):
    """The first real address of an address list (groups are looked into), or None."""
    if not value:
        return None
    for address in parse_addresses(value):
        if address.host is not None:
            return address
    return None


def _mailbox_key(address) -> str:
    # RFC 5256 §3: SORT FROM, TO and CC compare the addr-mailbox (the local part) alone
    if address is None or not address.mailbox:
        return ""
    return casemap(decode_words(address.mailbox.encode("latin-1")))


def _display(address) -> str:
    # RFC 5957 §3: the decoded display name; when it is absent or empty, the address itself
    if address is None:
        return ""
    if address.name:
        name = decode_words(address.name.encode("latin-1")).strip()
        if name:
            return name
    return f"{address.mailbox}@{address.host}" if address.host else (address.mailbox or "")


def sort_keys(raw: bytes) -> SortKeys:
    """Read one message's sort and thread keys from its top-level header."""
    fields = header_fields(raw[:header_end(raw)])
    return header_sort_keys(fields, _date(first_values(fields).get("date")))


def header_sort_keys(fields: list[tuple[str, bytes]], date: datetime | None) -> SortKeys:
    """``sort_keys`` of a header already read: its ``header_fields``, and its Date as
    ``analyze`` reads it (``MessageInfo.date``), so that a message is parsed once."""
    values = first_values(fields)
    subject, reply = base_subject(decode_words(values.get("subject", b"")))
    sender, recipient, copied = (_first_mailbox(values.get(name)) for name in ("from", "to", "cc"))
    if date is not None and date.tzinfo is None:
        date = date.replace(tzinfo=timezone.utc)  # "-0000": UTC, the sender's zone unknown (RFC 5322 §3.3)
    own_id = message_ids(values.get("message-id", b"").decode("latin-1"))
    references = message_ids(values.get("references", b"").decode("latin-1"))
    if not references:
        references = message_ids(values.get("in-reply-to", b"").decode("latin-1"))[:1]
    return SortKeys(
        sent=date.timestamp() if date is not None else None,
        subject=casemap(subject),
        reply=reply,
        from_=_mailbox_key(sender),
        to=_mailbox_key(recipient),
        cc=_mailbox_key(copied),
        display_from=casemap(_display(sender)),
        display_to=casemap(_display(recipient)),
        message_id=own_id[0] if own_id else "",
        references=tuple(references),
    )
