"""Shared steps of the outbound (MTA) tests: queue a message, wait for the queue, read a mailbox."""

from __future__ import annotations

import email
import email.policy
import time

from appliance.store import QueueEntry

FAST_RETRY = ["0.2s"]


def message(sender: str, to: str, subject: str = "hello", body: str = "Hello there.\r\n") -> bytes:
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.monotonic_ns()}@example.org>\r\n\r\n{body}").encode()


def queue(server, sender: str, recipients: list[str], raw: bytes | None = None, dsn: dict | None = None) -> list[int]:
    """Feed the relay queue as the SMTP server's router does."""
    raw = raw or message(sender, recipients[0])
    entries = [QueueEntry(sender, r, dict(dsn or {})) for r in recipients]
    return list(server.store.deliver(raw, [], queue=entries).queue_ids)


def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_queue_empty(server, timeout: float = 15.0) -> None:
    wait_until(lambda: not server.store.list_queue(), timeout, "an empty queue")


def inbox(server, address: str) -> list[email.message.EmailMessage]:
    """The messages in ``address``'s INBOX, parsed."""
    store = server.store
    user = store.get_user(address)
    mailbox = store.get_mailbox(user.id, "INBOX")
    return [email.message_from_bytes(store.get_raw(r.blob_id), policy=email.policy.default)
            for r in store.list_messages(mailbox.id)]


def delivery_status(dsn_message) -> list[dict[str, str]]:
    """The per-recipient blocks of a DSN's message/delivery-status part, as dicts."""
    part = next(p for p in dsn_message.walk() if p.get_content_type() == "message/delivery-status")
    blocks = []
    for sub in part.get_payload()[1:]:
        blocks.append({k: str(v) for k, v in sub.items()})
    return blocks
