"""IMAP URLs (RFC 5092) that name one message or a part of it, as CATENATE uses them.

Only the message-part form is read (``imessagepart``): a mailbox, optionally its
UIDVALIDITY, a UID, and optionally a SECTION and a PARTIAL range. URLAUTH forms
(RFC 4467) are not supported. Three spellings are accepted:

- absolute: ``imap://user@host/INBOX;UIDVALIDITY=7/;UID=3/;SECTION=1.2``
- absolute path: ``/INBOX;UIDVALIDITY=7/;UID=3`` (this server, this user)
- relative to the selected mailbox: ``;UID=3/;SECTION=TEXT`` (RFC 3986 §5.2 against
  the URL of the selected mailbox)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes


class BadUrl(Exception):
    """The URL is not one this server can resolve (answered NO [BADURL ...])."""


@dataclass(frozen=True)
class MessagePartUrl:
    """A parsed ``imessagepart``; ``mailbox`` None means the selected mailbox."""

    user: str | None  # enc-user, percent-decoded; None when the URL names no user
    host: str | None  # None for a path-absolute or relative URL
    mailbox: str | None
    uidvalidity: int | None
    uid: int
    section: str | None  # section text as in FETCH BODY[...], e.g. "1.2.MIME"
    partial: tuple[int, int | None] | None  # (origin, length or None for "to the end")


# RFC 5092 §11: imapurl = "imap://" iserver ipath-query; iserver = [iuserinfo "@"] host [":" port]
_ABSOLUTE = re.compile(r"imap://(?:(?P<userinfo>[^@/]*)@)?(?P<host>\[[^\]/]*\]|[^:/]*)(?::\d*)?(?P<path>/.*)?\Z",
                       re.IGNORECASE | re.DOTALL)
# imessagepart = imailbox-ref iuid [isection] [ipartial]; imailbox-ref = enc-mailbox [uidvalidity]
_MAILBOX_REF = re.compile(r"(?P<mailbox>[^;]*)(?:;UIDVALIDITY=(?P<uidvalidity>[1-9]\d{0,9}))?\Z", re.IGNORECASE)
_UID = re.compile(r";UID=(?P<uid>[1-9]\d{0,9})\Z", re.IGNORECASE)
_SECTION = re.compile(r";SECTION=(?P<section>.+)\Z", re.IGNORECASE | re.DOTALL)
_PARTIAL = re.compile(r";PARTIAL=(?P<origin>\d{1,10})(?:\.(?P<length>[1-9]\d{0,9}))?\Z", re.IGNORECASE)


def _decode(text: str) -> str:
    """Percent-decoding (RFC 5092 §3: mailbox names and sections are UTF-8, %-escaped)."""
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadUrl("not UTF-8") from exc


def parse_message_url(url: str) -> MessagePartUrl:
    """Parse a URL naming a message or message part; raises BadUrl."""
    user = host = None
    path = url
    absolute = _ABSOLUTE.match(url)
    if absolute:
        userinfo = absolute.group("userinfo")
        if userinfo is not None:
            # iuserinfo = enc-user [iauth]; iauth = ";AUTH=" ( "*" / enc-auth-type )
            user = _decode(re.split(";AUTH=", userinfo, maxsplit=1, flags=re.IGNORECASE)[0]) or None
        host = absolute.group("host").lower()
        path = absolute.group("path") or ""
    elif url.lower().startswith("imap:"):
        raise BadUrl("malformed imap URL")
    # the steps after the mailbox each begin with "/;"; a ";" inside a mailbox name is %-escaped
    if path.startswith(";"):
        first, *rest = path.split("/;")
        steps = [first] + [";" + s for s in rest]
        mailbox = uidvalidity = None
    else:
        if not path.startswith("/"):
            raise BadUrl("the URL names no message")
        head, *rest = path[1:].split("/;")
        steps = [";" + s for s in rest]
        ref = _MAILBOX_REF.match(head)
        if not ref or not ref.group("mailbox"):
            raise BadUrl("bad mailbox in URL")
        mailbox = _decode(ref.group("mailbox"))
        uidvalidity = int(ref.group("uidvalidity")) if ref.group("uidvalidity") else None
    if not steps or not (uid := _UID.match(steps[0])):
        raise BadUrl("the URL names no UID")
    section = partial = None
    rest = steps[1:]
    if rest and (match := _SECTION.match(rest[0])):
        section = _decode(match.group("section"))
        rest = rest[1:]
    if rest and (match := _PARTIAL.match(rest[0])):
        length = match.group("length")
        partial = (int(match.group("origin")), int(length) if length else None)
        rest = rest[1:]
    if rest:
        raise BadUrl("unsupported URL component")  # URLAUTH's ;EXPIRE= and ;URLAUTH= among them
    return MessagePartUrl(user, host, mailbox, uidvalidity, int(uid.group("uid")), section, partial)
