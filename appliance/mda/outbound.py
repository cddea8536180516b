"""Messages the MDA itself sends (receipts, vacation replies, redirects), addressed for delivery.

A local recipient gets the message straight into INBOX; anyone else gets a relay queue
row. Either way the message is written in the same transaction as the delivery that
caused it (``Store.deliver_filtered``), so it is sent exactly when that mail is kept.
"""

from __future__ import annotations

import logging
from typing import Iterable

from appliance.store import Delivery, Notice, QueueEntry

log = logging.getLogger("kotakpos.mda")


def notice(store, sender: str, raw: bytes, recipients: Iterable[str]) -> Notice | None:
    """``raw`` from envelope ``sender`` to ``recipients``: local mailboxes and/or the queue."""
    deliveries: list[Delivery] = []
    queue: list[QueueEntry] = []
    for address in recipients:
        domain = address.rpartition("@")[2]
        if not store.is_local_domain(domain):
            queue.append(QueueEntry(sender, address, {}))
            continue
        resolution = store.resolve(address)
        if resolution is None:
            log.info("no local address <%s>: message from <%s> dropped", address, sender)
            continue
        deliveries += [Delivery(u.id) for u in resolution.users]
        queue += [QueueEntry(sender, t, {}) for t in resolution.external]
    if not deliveries and not queue:
        return None
    return Notice(raw, tuple(deliveries), tuple(queue))
