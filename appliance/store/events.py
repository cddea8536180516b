"""Change events, published after commit to whoever subscribed (IMAP IDLE, the TUI).

Subscribers get their own queue; publishing never blocks on a slow subscriber (its queue
is bounded and, when full, the subscriber is told it overflowed and must resynchronise).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class MailboxChanged:
    """Messages appeared, changed flags or were expunged in a mailbox."""

    kind: str                       # "exists" | "flags" | "expunge" | "created" | "deleted" | "renamed"
    user_id: int
    mailbox_id: int
    uids: tuple[int, ...] = ()
    modseq: int = 0


@dataclass(frozen=True)
class QueueChanged:
    """Relay queue rows were added, attempted, delivered or removed."""

    kind: str                       # "queued" | "deferred" | "delivered" | "bounced" | "held" | "released" | "deleted"
    ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class AccountsChanged:
    """Domains, users or aliases changed."""

    kind: str
    name: str = ""


@dataclass(frozen=True)
class BlobReleased:
    """Internal: the last reference to a blob went away (the search index drops it)."""

    blob_id: int


@dataclass(frozen=True)
class Overflowed:
    """The subscriber fell behind and missed events: it must re-read the state it shows."""


class Subscription:
    def __init__(self, bus: "EventBus", user_id: int | None, maxsize: int):
        self._bus = bus
        self.user_id = user_id
        self._queue: queue.Queue = queue.Queue(maxsize)
        self.overflowed = False
        self.notify = None  # optional callable run after each event is queued (IMAP IDLE wakes on it)

    def get(self, timeout: float | None = None):
        """The next event, or None when ``timeout`` passes first."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list:
        """Every event waiting now, without blocking."""
        events = []
        while True:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                return events

    def _offer(self, event) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            if not self.overflowed:
                self.overflowed = True
                try:
                    self._queue.get_nowait()
                    self._queue.put_nowait(Overflowed())
                except (queue.Empty, queue.Full):
                    pass
        if self.notify is not None:
            self.notify()

    def close(self) -> None:
        self._bus._remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class EventBus:
    def __init__(self):
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []

    def subscribe(self, user_id: int | None = None, maxsize: int = 10000) -> Subscription:
        """Events for one user's mailboxes (``user_id``), or everything (None)."""
        sub = Subscription(self, user_id, maxsize)
        with self._lock:
            self._subscribers = self._subscribers + [sub]
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s is not sub]

    def publish(self, events: list) -> None:
        subscribers = self._subscribers
        for event in events:
            owner = getattr(event, "user_id", None)
            for sub in subscribers:
                if sub.user_id is None or sub.user_id == owner:
                    sub._offer(event)
