"""Change events, published after commit to whoever subscribed (IMAP IDLE, the TUI).

Subscribers get their own queue; publishing never blocks on a slow subscriber (its queue
is bounded and, when full, the subscriber is told it overflowed and must resynchronise).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class MailboxChanged:
    """Messages appeared, changed flags or were expunged in a mailbox."""

    # "exists" | "flags" | "expunge" | "created" | "deleted" | "renamed" | "subscriptions" (mailbox_id 0)
    kind: str
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
class QuarantineChanged:
    """A filter held a message back, or one was released or deleted."""

    kind: str                       # "held" | "released" | "deleted"
    ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class AccountsChanged:
    """Domains, users, aliases or a user's Sieve scripts changed."""

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
    """One subscriber's events: a bounded queue with one reader (its owner's thread).

    A deque under a plain lock rather than ``queue.Queue``: a delivery to a mailbox that a
    thousand IMAP clients watch offers a thousand events and drains a thousand queues, and
    Queue's condition variables cost several times more for each.
    """

    def __init__(self, bus: "EventBus", user_id: int | None, maxsize: int,
                 wants: Callable[[Any], bool] | None = None):
        self._bus = bus
        self.user_id = user_id
        self.wants = wants  # asked of each event in the publishing thread; None: every event
        self._maxsize = maxsize
        self._events: deque = deque()
        self._lock = threading.Lock()
        self._ready = threading.Event()   # set for a reader blocked in get()
        self._reader_waiting = False
        self.overflowed = False
        self.closed = False
        self.notify = None  # optional callable run after events are queued (POP3 and the queue runner use it)

    def get(self, timeout: float | None = None):
        """The next event, or None when ``timeout`` passes first."""
        with self._lock:
            if self._events:
                return self._events.popleft()
            if self.closed:
                return None
            self._reader_waiting = True
            self._ready.clear()
        self._ready.wait(timeout)
        with self._lock:
            self._reader_waiting = False
            return self._events.popleft() if self._events else None

    def burst(self, timeout: float) -> list:
        """The next event and every one queued behind it; [] when ``timeout`` passes first.

        Threads that serve a subscription call this from a function of its own per burst,
        so that no event is still referenced while they wait for the next (one can name
        the 10,000 UIDs a POP3 session read).
        """
        first = self.get(timeout)
        return [] if first is None else [first, *self.drain()]

    def drain(self) -> list:
        """Every event waiting now, without blocking."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events

    def _offer(self, events: list) -> None:
        with self._lock:
            for event in events:
                if len(self._events) < self._maxsize:
                    self._events.append(event)
                elif not self.overflowed:
                    # the subscriber fell behind: it must re-read, so one marker replaces the oldest
                    self.overflowed = True
                    self._events.popleft()
                    self._events.append(Overflowed())
            wake_reader = self._reader_waiting
        if wake_reader:
            self._ready.set()
        if self.notify is not None:
            self.notify()

    def close(self) -> None:
        """Stop receiving events; a reader blocked in get() returns at once.

        Drops ``notify`` too: it is usually a method of the object that holds this
        subscription, and the cycle would keep that object (a POP3 maildrop of 10,000
        messages) alive until Python's rare full collection.
        """
        self._bus._remove(self)
        with self._lock:
            self.closed = True
            self.notify = None
        self._ready.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class EventBus:
    def __init__(self):
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []

    def subscribe(self, user_id: int | None = None, maxsize: int = 10000,
                  wants: Callable[[Any], bool] | None = None) -> Subscription:
        """Events for one user's mailboxes (``user_id``), or everything (None); with ``wants``,
        only the events for which it is true, and ``Overflowed``: a subscriber offered
        nothing is not woken. ``wants`` runs in the writer thread after each commit, so it
        must be quick and never block."""
        sub = Subscription(self, user_id, maxsize, wants)
        with self._lock:
            self._subscribers = self._subscribers + [sub]
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s is not sub]

    def overflow_all(self) -> None:
        """Tell every subscriber to re-read what it shows (changes were missed)."""
        for sub in self._subscribers:
            sub._offer([Overflowed()])

    def publish(self, events: list) -> None:
        by_owner: dict[int | None, list] = {}
        for event in events:
            by_owner.setdefault(getattr(event, "user_id", None), []).append(event)
        for sub in self._subscribers:
            mine = events if sub.user_id is None else by_owner.get(sub.user_id)
            if mine and sub.wants is not None:
                mine = [e for e in mine if sub.wants(e)]
            if mine:
                sub._offer(mine)
