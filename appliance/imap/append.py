"""APPEND with MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469).

Every message of one APPEND is assembled first — CATENATE parts copied from the
user's own messages through IMAP URLs (``imapurl``) — and then stored in one store
transaction: either all of them are added, with one APPENDUID naming every new
UID, or none is (RFC 3502 §6.3.11).
"""

from __future__ import annotations

import time

from appliance import mime
from appliance.imap import replies
from appliance.imap.errors import CommandSyntaxError, UserError
from appliance.imap.fetch import parse_fetch_att
from appliance.imap.imapurl import BadUrl, MessagePartUrl, parse_message_url
from appliance.imap.parse import Cursor
from appliance.store import Incoming, NotFound


MAX_MESSAGES = 1000  # messages in one APPEND; the reader bounds their total size


def append(session, cmd) -> None:
    """APPEND mailbox message [message ...]: all or nothing, then OK [APPENDUID v uid-set]."""
    mailbox = session.store.get_mailbox(session.user.id, cmd.mailbox)
    if mailbox is None:
        raise UserError(f"No mailbox {cmd.mailbox}", "TRYCREATE")
    if len(cmd.messages) > MAX_MESSAGES:
        raise UserError(f"At most {MAX_MESSAGES} messages in one APPEND", "LIMIT")  # RFC 5530 §3
    # all the messages of one APPEND share the size limit, as their literals do in the reader:
    # URLs must not let a short command fill the memory
    budget = session.ctx.config.limits.message_size - sum(len(m.message) for m in cmd.messages)
    items = []
    for message in cmd.messages:
        raw = message.message
        if message.parts is not None:
            raw = _catenate(session, message.parts, budget)
            budget -= len(raw)
        if not raw:
            raise UserError("Empty message")
        flags = [f for f in message.flags if f != "\\Recent"]
        items.append((raw, flags, message.date.timestamp() if message.date else None, message.binary))
    if len(items) == 1:
        raw, flags, when, binary = items[0]
        uidvalidity, uid = session.store.append(session.user.id, mailbox.id, raw, flags, when, binary)
        uids = [uid]
    else:
        # RFC 3502 §6.3.11: one transaction, so that either every message is added or none
        uidvalidity = mailbox.uidvalidity
        incoming = [Incoming(raw, frozenset(flags), when or time.time(), binary) for raw, flags, when, binary in items]
        uids = session.store.append_many(session.user.id, mailbox.id, incoming)
    # RFC 4315 §3 with RFC 3502: one APPENDUID with the UIDs of all the messages, in order
    session.ok(cmd, "APPEND completed", f"APPENDUID {uidvalidity} {replies.sequence_set(uids).decode()}")


def _catenate(session, parts, budget: int) -> bytes:
    """RFC 4469 §5: the message made of the parts in order; NO [TOOBIG] past ``budget`` octets."""
    out = bytearray()
    for part in parts:
        data = part.text if part.url is None else _url_data(session, part.url)
        if len(out) + len(data) > budget:
            raise UserError("The message would be too big", "TOOBIG")
        out += data
    return bytes(out)


def _bad_url(url: str) -> UserError:
    # RFC 4469 §6: resp-text-code =/ "BADURL" SP url-resp-text
    return UserError("Cannot use this URL", "BADURL " + url.replace("]", "%5D"))


def _url_data(session, url: str) -> bytes:
    """The octets a message-part URL names in the user's own mailboxes (RFC 4469 §5)."""
    try:
        parsed = parse_message_url(url)
    except BadUrl as exc:
        raise _bad_url(url) from exc
    mailbox_id = _url_mailbox(session, parsed)
    if mailbox_id is None:
        raise _bad_url(url)
    rows = session.store.messages_by_uid(mailbox_id, [parsed.uid])
    if not rows:
        raise _bad_url(url)
    section = None
    if parsed.section is not None:
        try:
            section = parse_fetch_att(Cursor(b"BODY.PEEK[" + parsed.section.encode("utf-8") + b"]")).section
        except CommandSyntaxError as exc:
            raise _bad_url(url) from exc
    try:
        data = raw = session.store.get_raw(rows[0].blob_id)
        if section is not None and (section.part or section.text):
            info = session.store.get_info(rows[0].blob_id)
            if section.part and mime.find_part(info.root, section.part) is None:
                raise _bad_url(url)
            data = mime.section(raw, info, section.part, section.text, list(section.fields))
    except NotFound as exc:
        raise _bad_url(url) from exc  # expunged since it was looked up
    if parsed.partial is not None:
        origin, length = parsed.partial
        data = data[origin:] if length is None else data[origin:origin + length]
    return data


def _url_mailbox(session, url: MessagePartUrl) -> int | None:
    """The id of the mailbox a URL names, if it is this user's on this server."""
    if url.user is not None and url.user.lower() != session.user.address.lower():
        return None
    if url.host is not None and url.host.strip("[]") not in _our_hosts(session):
        return None
    if url.mailbox is None:
        # a relative URL is read against the selected mailbox (RFC 3986 §5.2)
        sel = session.selected
        if sel is None or (url.uidvalidity is not None and url.uidvalidity != sel.uidvalidity):
            return None
        return sel.mailbox_id
    mailbox = session.store.get_mailbox(session.user.id, _inbox_case(url.mailbox))
    if mailbox is None or (url.uidvalidity is not None and url.uidvalidity != mailbox.uidvalidity):
        return None
    return mailbox.id


def _our_hosts(session) -> set[str]:
    """The names a URL may give this server by: its hostname, or the address the client reached."""
    return {session.ctx.hostname.lower(), session.conn.sock.getsockname()[0].lower()}


def _inbox_case(name: str) -> str:
    """INBOX is case-insensitive (RFC 3501 §5.1), in URLs too."""
    if name.upper() == "INBOX" or name.upper().startswith("INBOX/"):
        return "INBOX" + name[5:]
    return name
