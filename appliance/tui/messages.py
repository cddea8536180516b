"""Messages the TUI's workers post: past-tense facts about the server and admin calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from textual.message import Message


@dataclass
class ServerConnected(Message):
    """The admin link is up (first time or again after the server came back)."""

    admin: Any          # AdminAPI in-process, AdminClient over the socket: the same methods
    traffic: dict       # the server's per-minute history (AdminAPI.traffic)
    log: list[dict]     # the server's recent log lines (AdminAPI.log_tail)


@dataclass
class ServerLost(Message):
    """The admin link is down; the link worker keeps trying to reconnect."""

    reason: str


@dataclass
class EventsArrived(Message):
    """A batch of live admin events (sessions, queue, mailboxes, accounts, log lines)."""

    events: list[dict]


@dataclass
class AdminReplied(Message):
    """An admin call made by a screen returned; ``then`` shows the result."""

    method: str
    result: Any
    then: Callable[[Any], None] | None
    done: str | None    # a notification to show, e.g. "retried 3 entries"
