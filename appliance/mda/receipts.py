"""Return receipts: delivery DSNs for local delivery, read receipts (MDN), and the ledger.

- Delivery (RFC 3461/3464): a local recipient whose RCPT asked NOTIFY=SUCCESS makes a
  "delivered" DSN to the sender, written with the delivery itself.
- Read (RFC 8098): an incoming message with Disposition-Notification-To is recorded per
  recipient; under the "auto" policy the server sends the "displayed" MDN on the first
  \\Seen (IMAP, or POP3 RETR) — once, never for mail filed as spam, never without a
  Return-Path, and only when the Return-Path is the address asking (RFC 8098 §2.1).
- The ledger: each message a local user sends that asks for a delivery or read receipt
  gets a row per recipient (``sent_rows``, written with the message); DSNs and MDNs that
  arrive later in that user's mailboxes are matched to it (``on_arrival``) by ENVID or
  Message-ID and recipient.
"""

from __future__ import annotations

import logging
import secrets
import time
from email.utils import formatdate

from appliance import mime
from appliance.mda import outbound
from appliance.mda.filter import ACCEPT, Check, Filter, Incoming, Verdict
from appliance.mime import Part
from appliance.store import NotFound, RequestedReceipt, User

log = logging.getLogger("kotakpos.mda")

# Ledger states a DSN Action (RFC 3464 §2.3.3) turns into.
_ACTIONS = {"delivered": "delivered", "relayed": "relayed", "expanded": "delivered", "delayed": "delayed",
            "failed": "failed"}


def sent_rows(store, envelope, values: dict[str, bytes]) -> list[dict]:
    """Ledger rows for a message a local user submitted (logged in): one per recipient, when
    it asked for a delivery (NOTIFY=SUCCESS) or a read (Disposition-Notification-To) receipt.
    ``values``: mime.headers.first_values() of its header, read as every reader reads it."""
    user = store.get_user(envelope.authenticated_as) if envelope.authenticated_as else None
    if user is None:
        return []
    asks_read = "disposition-notification-to" in values
    message_id, subject = mime.message_id(values), mime.subject(values)
    rows = []
    for r in envelope.recipients:
        asks_delivery = r.notify is not None and "SUCCESS" in r.notify
        if not (asks_delivery or asks_read):
            continue
        rows.append({"user_id": user.id, "message_id": message_id, "envid": envelope.envid or envelope.message_id,
                     "recipient": r.route.address, "subject": subject[:200],
                     "delivery": "requested" if asks_delivery else "", "display": "requested" if asks_read else ""})
    return rows


class ReceiptsFilter(Filter):
    name = "receipts"
    runs_locally = True  # the store only

    def __init__(self, ctx):
        self.ctx = ctx

    def check(self, msg: Incoming) -> Check:
        return ReceiptsCheck(self, msg)

    # -- after delivery: read receipts and returning reports -------------------------------

    def policy(self, user_id: int) -> str:
        return self.ctx.store.user_settings(user_id).get("read_receipts", self.ctx.config.mda.read_receipts)

    def on_seen(self, user_id: int, mailbox_id: int, row) -> None:
        """A message got \\Seen: send its MDN if one is pending and the policy is auto."""
        store = self.ctx.store
        try:
            info = store.get_info(row.blob_id)
        except NotFound:
            return
        if not info.message_id:
            return
        request = store.pending_receipt(user_id, info.message_id)
        if request is None:
            return
        policy = self.policy(user_id)
        if policy == "never":
            store.settle_receipt(user_id, info.message_id, "refused")
            return
        if policy != "auto":
            return  # the client asks the user
        user = store.get_user_by_id(user_id)
        if user is None:
            return
        if request.notify_to.lower() != request.return_path.lower():
            store.settle_receipt(user_id, info.message_id, "refused")
            log.info("mda: no automatic MDN to <%s>: it is not the Return-Path <%s> (RFC 8098 §2.1)",
                     request.notify_to, request.return_path)
            return
        raw = mdn(self.ctx.hostname, user.address, request, "displayed")
        notice = outbound.notice(store, "", raw, [request.notify_to])
        if store.settle_receipt(user_id, info.message_id, "sent", notice):
            self.ctx.count("mda.mdn_sent")
            log.info("mda: read receipt sent to <%s> for %s", request.notify_to, info.message_id)

    def on_arrival(self, user_id: int, blob_id: int) -> None:
        """A report arrived in a user's mailbox: a DSN or MDN updates their ledger."""
        try:
            root = self.ctx.store.get_info(blob_id).root
        except NotFound:
            return
        if not (root.maintype == "multipart" and root.subtype == "report"):
            return
        raw = self.ctx.store.get_raw(blob_id)
        report_type = root.params.get("report-type", "").lower()
        if report_type == "delivery-status":
            self._dsn(user_id, raw, root)
        elif report_type == "disposition-notification":
            self._mdn(user_id, raw, root)

    def _dsn(self, user_id: int, raw: bytes, root: Part) -> None:
        status = _child(root, "message", "delivery-status")
        if status is None:
            return
        blocks = _blocks(raw[status.body_start:status.body_end])
        if not blocks:
            return
        envid = blocks[0].get("original-envelope-id", "")
        message_id = _returned_message_id(raw, root)
        for block in blocks[1:]:
            recipient = _address(block.get("original-recipient") or block.get("final-recipient", ""))
            state = _ACTIONS.get(block.get("action", "").lower())
            if not recipient or not state:
                continue
            changed = self.ctx.store.update_sent_receipt(user_id, "delivery", state, block.get("status", ""),
                                                         recipient, envid=envid, message_id=message_id)
            if not changed and envid:
                changed = self.ctx.store.update_sent_receipt(user_id, "delivery", state, block.get("status", ""),
                                                             recipient, message_id=message_id)
            if changed:
                self.ctx.count("mda.receipt_matched")

    def _mdn(self, user_id: int, raw: bytes, root: Part) -> None:
        part = _child(root, "message", "disposition-notification")
        if part is None:
            return
        blocks = _blocks(raw[part.body_start:part.body_end])
        fields = blocks[0] if blocks else {}
        recipient = _address(fields.get("original-recipient") or fields.get("final-recipient", ""))
        disposition = fields.get("disposition", "").rpartition(";")[2].strip().lower().split("/")[0]
        if recipient and disposition and self.ctx.store.update_sent_receipt(
                user_id, "display", disposition, fields.get("disposition", ""), recipient,
                message_id=fields.get("original-message-id", "").strip()):
            self.ctx.count("mda.receipt_matched")


class ReceiptsCheck(Check):
    def __init__(self, f: ReceiptsFilter, msg: Incoming):
        super().__init__(msg)
        self.f = f

    def check_body(self) -> Verdict:
        """The delivery DSN for local recipients that asked NOTIFY=SUCCESS (RFC 3461 §4.1)."""
        from appliance.mta import dsn
        msg = self.msg
        statuses = [dsn.RecipientStatus(r.route.address, dsn.DELIVERED, "2.0.0", "delivered to mailbox",
                                        orcpt=r.orcpt)
                    for r in msg.envelope.recipients if r.route.users and r.notify and "SUCCESS" in r.notify]
        if not statuses or not msg.sender:
            return ACCEPT
        report = dsn.build(msg.hostname, msg.sender, msg.raw, statuses, time.time(), msg.envelope.ret,
                           msg.envelope.envid)
        notice = outbound.notice(self.f.ctx.store, "", report, [msg.sender])
        self.f.ctx.count("mda.dsn_success")
        return Verdict(notices=(notice,) if notice else ())

    def check_rcpt(self, user: User) -> Verdict:
        """Remember a read-receipt request (RFC 8098 §2.1), refused at once where no MDN may go."""
        msg = self.msg
        notify = [a for a in msg.addresses("Disposition-Notification-To") if "@" in a]
        if not notify or not msg.info.message_id:
            return ACCEPT
        spam = msg.notes.get("spam", {}).get(user.id, 0.0) >= self.f.ctx.config.mda.junk_score
        state = "refused" if spam or not msg.sender else "pending"
        msg.notes.setdefault("requested", []).append(RequestedReceipt(
            user.id, msg.info.message_id, notify[0], msg.sender, msg.info.subject[:200], 0.0, state))
        return ACCEPT


def mdn(hostname: str, reader: str, request: RequestedReceipt, disposition: str) -> bytes:
    """An RFC 8098 message disposition notification from ``reader`` about ``request``."""
    boundary = f"=_kotakpos_{secrets.token_hex(12)}"
    text = (f"The message sent on {formatdate(request.received, localtime=True)} to {reader}\r\n"
            f"with subject \"{request.subject}\" has been {disposition}.\r\n"
            "This is no guarantee that the message has been read or understood.\r\n")
    lines = [
        f"From: <{reader}>",
        f"To: <{request.notify_to}>",
        f"Subject: Read: {request.subject}",
        f"Date: {formatdate(time.time(), localtime=True)}",
        f"Message-ID: <{secrets.token_hex(12)}@{hostname}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=disposition-notification; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        text,
        f"--{boundary}",
        "Content-Type: message/disposition-notification",
        "",
        f"Reporting-UA: {hostname}; Kotakpos",
        f"Final-Recipient: rfc822; {reader}",
        f"Original-Message-ID: {request.message_id}",
        f"Disposition: automatic-action/MDN-sent-automatically; {disposition}",
        "",
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


def _child(root: Part, maintype: str, subtype: str) -> Part | None:
    return next((c for c in root.children if c.maintype == maintype and c.subtype == subtype), None)


def _blocks(data: bytes) -> list[dict[str, str]]:
    """RFC 3464 §2.1 / RFC 8098 §3.1: header-like blocks separated by blank lines."""
    blocks = []
    for chunk in data.replace(b"\r\n", b"\n").strip(b"\n").split(b"\n\n"):
        fields = mime.headers.first_values(mime.header_fields(chunk.strip(b"\n") + b"\n"))
        if fields:
            blocks.append({name: " ".join(mime.headers.to_text(value).split()) for name, value in fields.items()})
    return blocks


def _address(value: str) -> str:
    """"rfc822; alice@example.org" -> "alice@example.org"."""
    return value.partition(";")[2].strip().strip("<>") if ";" in value else value.strip().strip("<>")


def _returned_message_id(raw: bytes, root: Part) -> str:
    """The Message-ID of the returned original (text/rfc822-headers or message/rfc822 part)."""
    for child in root.children:
        if (child.maintype, child.subtype) in (("text", "rfc822-headers"), ("message", "rfc822")):
            headers = mime.headers.first_values(mime.header_fields(raw[child.body_start:child.body_end]))
            return mime.message_id(headers)
    return ""
