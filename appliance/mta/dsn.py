"""Delivery status notifications (RFC 3464) and the rules for when to send one (RFC 3461).

A DSN is a multipart/report from MAILER-DAEMON, sent with a null reverse path so that
it can never cause another DSN: a human-readable part, a message/delivery-status part
with one block per recipient (Action, Status, Diagnostic-Code), and the original
message — whole, or only its headers when the sender asked RET=HDRS or the notice is a
delay or success report.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from email.utils import formatdate

from appliance.mta.deliver import xtext

# Above this size a failure DSN returns only the headers even with RET=FULL.
FULL_RETURN_LIMIT = 10 * 1024 * 1024

FAILED, DELAYED, DELIVERED, RELAYED = "failed", "delayed", "delivered", "relayed"

_SUBJECTS = {
    FAILED: "Undelivered Mail Returned to Sender",
    DELAYED: "Delayed Mail (still being retried)",
    DELIVERED: "Successful Mail Delivery Report",
    RELAYED: "Successful Mail Delivery Report",
}

_EXPLAIN = {
    FAILED: "Your message could not be delivered to one or more recipients. It will not be retried.",
    DELAYED: "Your message has not been delivered yet to one or more recipients. Delivery is still being "
             "retried; you need not send it again.",
    DELIVERED: "Your message was delivered to the recipients below.",
    RELAYED: "Your message was passed on to the recipients' mail servers, which do not report delivery "
             "themselves; no further notice will follow.",
}

# The DSN NOTIFY keyword that asks for each kind of report (RFC 3461 §4.1).
_NOTIFY_FOR = {FAILED: "FAILURE", DELAYED: "DELAY", DELIVERED: "SUCCESS", RELAYED: "SUCCESS"}


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's block in a DSN (RFC 3464 §2.3)."""

    recipient: str
    action: str                 # failed | delayed | delivered | relayed
    status: str                 # RFC 3463 code, e.g. "5.1.1"
    diagnostic: str = ""        # the remote reply ("smtp; 550 ...") or our own reason
    remote_mta: str = ""        # the server that answered
    orcpt: tuple[str, str] | None = None
    will_retry_until: float | None = None


def wanted(dsn: dict, action: str) -> bool:
    """Whether the sender wants this kind of report for a recipient (RFC 3461 §4.1).

    Without NOTIFY, failures and delays are reported and successes are not.
    """
    notify = dsn.get("notify")
    if notify is None:
        return action in (FAILED, DELAYED)
    return _NOTIFY_FOR[action] in notify


def build(hostname: str, sender: str, original: bytes, statuses: list[RecipientStatus], arrival: float,
          ret: str | None = None, envid: str | None = None, now: float | None = None) -> bytes:
    """The DSN for ``sender`` about ``original`` (all statuses must share one action)."""
    action = statuses[0].action
    now = now or time.time()
    boundary = f"=_kotakpos_{secrets.token_hex(12)}"
    headers_only = action != FAILED or ret == "HDRS" or len(original) > FULL_RETURN_LIMIT
    text = _human_text(hostname, action, statuses)
    report = _delivery_status(hostname, statuses, arrival, envid)
    returned = _headers_of(original) if headers_only else original
    returned_type = "text/rfc822-headers" if headers_only else "message/rfc822"
    parts = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{sender}>",
        f"Subject: {_SUBJECTS[action]}",
        f"Date: {formatdate(now, localtime=False)}",
        f"Message-ID: <{secrets.token_hex(12)}@{hostname}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5: never answer this automatically
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated delivery status notification.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        text,
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        report,
        f"--{boundary}",
        f"Content-Type: {returned_type}",
        "",
        "",
    ]
    head = "\r\n".join(parts).encode("utf-8")
    body = returned if returned.endswith(b"\r\n") else returned + b"\r\n"
    return head + body + f"--{boundary}--\r\n".encode()


def _human_text(hostname: str, action: str, statuses: list[RecipientStatus]) -> str:
    lines = [f"This is the mail system at {hostname}.", "", _EXPLAIN[action], ""]
    for s in statuses:
        lines.append(f"<{s.recipient}>: {s.diagnostic or s.status}")
    return "\r\n".join(lines) + "\r\n"


def _delivery_status(hostname: str, statuses: list[RecipientStatus], arrival: float, envid: str | None) -> str:
    """RFC 3464 §2.2 per-message fields, then a §2.3 block per recipient."""
    blocks = []
    message = [f"Reporting-MTA: dns; {hostname}"]
    if envid:
        message.append(f"Original-Envelope-Id: {xtext(envid)}")
    message.append(f"Arrival-Date: {formatdate(arrival, localtime=False)}")
    blocks.append("\r\n".join(message))
    for s in statuses:
        fields = []
        if s.orcpt:
            fields.append(f"Original-Recipient: {s.orcpt[0]}; {s.orcpt[1]}")
        fields += [f"Final-Recipient: rfc822; {s.recipient}", f"Action: {s.action}", f"Status: {s.status}"]
        if s.remote_mta:
            fields.append(f"Remote-MTA: dns; {s.remote_mta}")
        if s.diagnostic:
            kind = "smtp" if s.diagnostic[:3].isdigit() else "x-kotakpos"
            fields.append(f"Diagnostic-Code: {kind}; {_one_line(s.diagnostic)}")
        fields.append(f"Last-Attempt-Date: {formatdate(time.time(), localtime=False)}")
        if s.will_retry_until:
            fields.append(f"Will-Retry-Until: {formatdate(s.will_retry_until, localtime=False)}")
        blocks.append("\r\n".join(fields))
    return "\r\n\r\n".join(blocks) + "\r\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:900]


def _headers_of(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[:end + 2]


def received_count(raw: bytes) -> int:
    """How many Received headers the message carries (RFC 5321 §6.3 loop detection)."""
    head = _headers_of(raw)
    return sum(1 for line in head.split(b"\r\n") if line[:9].lower() == b"received:")
