"""NOTIFY (RFC 5465 §3.1, grammar §8), legal in the authenticated and selected states."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.imap.commands.base import Command
from appliance.imap.fetch import FetchAtt, parse_fetch_att

SELECTED_FILTERS = frozenset({"SELECTED", "SELECTED-DELAYED"})
OTHER_FILTERS = frozenset({"INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"})
MESSAGE_EVENTS = frozenset({"MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE", "ANNOTATIONCHANGE"})
MAILBOX_EVENTS = frozenset({"MAILBOXNAME", "SUBSCRIPTIONCHANGE", "MAILBOXMETADATACHANGE", "SERVERMETADATACHANGE"})


@dataclass(frozen=True)
class EventGroup:
    """One event-group: which mailboxes (``filter`` and its ``mailboxes``) and which events, upper-cased."""

    filter: str
    mailboxes: tuple[str, ...] = ()  # SUBTREE / MAILBOXES only
    events: frozenset[str] = frozenset()  # empty for NONE
    fetch_atts: tuple[FetchAtt, ...] = ()  # MessageNew's fetch-atts, SELECTED filters only


def _event_group(cursor) -> EventGroup:
    # event-group = "(" filter-mailboxes SP events ")"
    cursor.open_paren()
    name = cursor.keyword()
    if name not in SELECTED_FILTERS | OTHER_FILTERS:
        raise cursor.error(f"unknown mailbox filter {name}")
    mailboxes: tuple[str, ...] = ()
    if name in ("SUBTREE", "MAILBOXES"):
        # one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"
        cursor.sp()
        if cursor.peek() == b"(":
            mailboxes = tuple(cursor.paren_list(cursor.mailbox, allow_empty=False))
        else:
            mailboxes = (cursor.mailbox(),)
    cursor.sp()
    events: set[str] = set()
    fetch_atts: tuple[FetchAtt, ...] = ()
    if not cursor.maybe(b"NONE"):
        def event():
            nonlocal fetch_atts
            word = cursor.keyword()
            if word not in MESSAGE_EVENTS | MAILBOX_EVENTS:
                raise cursor.error(f"unknown event {word}")
            if word == "MESSAGENEW" and cursor.peek(2) == b" (":
                # "MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]
                cursor.sp()
                fetch_atts = tuple(cursor.paren_list(lambda: parse_fetch_att(cursor), allow_empty=False))
            events.add(word)

        cursor.paren_list(event, allow_empty=False)
    if not cursor.close_paren():
        raise cursor.error("expected ) after the events")
    # RFC 5465: MessageNew and MessageExpunge come together; FlagChange needs both
    message_events = events & MESSAGE_EVENTS
    if message_events and not {"MESSAGENEW", "MESSAGEEXPUNGE"} <= message_events:
        raise cursor.error("MessageNew and MessageExpunge must be asked for together")
    if fetch_atts and name not in SELECTED_FILTERS:
        raise cursor.error("fetch attributes only for the selected mailbox")
    return EventGroup(name, mailboxes, frozenset(events), fetch_atts)


@dataclass(frozen=True)
class Notify(Command):
    # notify = "NOTIFY" SP (notify-set / notify-none); notify-set = "SET" [SP "STATUS"] SP event-groups
    VERB = "NOTIFY"
    groups: tuple[EventGroup, ...] | None = None  # None: NOTIFY NONE
    status: bool = False  # SET STATUS: report the mailboxes' status at once

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        word = cursor.keyword()
        if word == "NONE":
            return cls(tag)
        if word != "SET":
            raise cursor.error("expected SET or NONE")
        cursor.sp()
        status = cursor.maybe(b"STATUS ")
        groups = [_event_group(cursor)]
        while not cursor.at_end():
            cursor.sp()
            groups.append(_event_group(cursor))
        if sum(g.filter in SELECTED_FILTERS for g in groups) > 1:
            raise cursor.error("the selected mailbox may be named once")
        return cls(tag, tuple(groups), status)
