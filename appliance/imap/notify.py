"""NOTIFY (RFC 5465): news of the user's other mailboxes, and of the selected one without IDLE.

After ``NOTIFY SET`` the session keeps a ``Notifier``. Store events for mailboxes other
than the selected one, which ``sync`` used to drop, are collected here and told at the
next ``sync`` as STATUS responses (message events) and LIST responses (mailbox names,
subscriptions). Between commands the session waits for its client the way IDLE does
(``push.until_client_speaks``), so the same pusher thread delivers the news as soon as
the store commits it — no polling.

Supported: the SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE and
MAILBOXES filters; the MessageNew (with fetch attributes for the selected mailbox),
MessageExpunge, FlagChange, MailboxName and SubscriptionChange events.
"""

from __future__ import annotations

from appliance.imap import replies
from appliance.imap.commands.notify import SELECTED_FILTERS, EventGroup
from appliance.imap.errors import UserError
from appliance.store import NotFound
from appliance.store.events import MailboxChanged, Overflowed

SUPPORTED_EVENTS = frozenset({"MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE", "MAILBOXNAME", "SUBSCRIPTIONCHANGE"})
# RFC 5465: the BADEVENT response code lists the events the server supports
BADEVENT = "BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)"
# store event kinds that are message events, and the NOTIFY event each is
MESSAGE_EVENT_OF_KIND = {"exists": "MESSAGENEW", "expunge": "MESSAGEEXPUNGE", "flags": "FLAGCHANGE"}
NAME_KINDS = frozenset({"created", "deleted", "renamed"})
NEWS_BATCH_BYTES = 4 << 20  # message bytes read from the store at once for MessageNew's fetch attributes
# FETCH items answered from the message row and the stored ENVELOPE/BODYSTRUCTURE, without the message bytes
_WITHOUT_BYTES = frozenset({"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ", "ENVELOPE", "BODY",
                            "BODYSTRUCTURE"})


def notify(session, cmd) -> None:
    """NOTIFY SET [STATUS] groups / NOTIFY NONE (RFC 5465 §3.1)."""
    if cmd.groups is None:
        session.notify = None
        session.ok(cmd, "NOTIFY completed")
        return
    asked = frozenset().union(*(g.events for g in cmd.groups))
    if asked - SUPPORTED_EVENTS:
        raise UserError("Unsupported event", BADEVENT)
    notifier = Notifier(session, cmd.groups)
    session.notify = notifier
    if cmd.status:
        # RFC 5465 §3.1: STATUS for every mailbox whose message events the client now follows
        for mailbox_id, name in sorted(notifier.names.items(), key=lambda item: item[1]):
            if not notifier.is_selected(session, mailbox_id) and notifier.wants(name, "MESSAGENEW"):
                notifier.send_status(session, name)
    session.ok(cmd, "NOTIFY completed")


class Notifier:
    """One session's NOTIFY SET: what it follows, and the news not yet told."""

    def __init__(self, session, groups: tuple[EventGroup, ...]) -> None:
        self.groups = [g for g in groups if g.filter not in SELECTED_FILTERS]  # in order: the first match wins
        self.selected_group = next((g for g in groups if g.filter in SELECTED_FILTERS), None)
        self.names: dict[int, str] = {}  # mailbox id -> name as the client last heard it; refreshed by report
        self.subscribed: set[str] = set()  # subscriptions as the client last heard them
        self._reload(session)
        self.due_status: dict[int, set[str]] = {}  # mailbox id -> message events since the last report
        self.due_names: list[tuple[str, int]] = []  # (store event kind, mailbox id) of mailbox name events
        self.due_subscriptions = False  # a subscription changed since the last report
        self.overflowed = False  # the store dropped events for this session (NOTIFICATIONOVERFLOW)

    def _reload(self, session) -> None:
        self.names = {m.id: m.name for m in session.store.list_mailboxes(session.user.id)}
        self.subscribed = session.store.subscriptions(session.user.id)

    @property
    def follows_selected(self) -> bool:
        """The client asked for news of the selected mailbox between commands (a SELECTED filter with events)."""
        return self.selected_group is not None and bool(self.selected_group.events)

    @property
    def expunge_at_once(self) -> bool:
        """Whether news pushed between commands may carry EXPUNGE (SELECTED, not SELECTED-DELAYED)."""
        group = self.selected_group
        return group is not None and group.filter == "SELECTED" and "MESSAGEEXPUNGE" in group.events

    @staticmethod
    def is_selected(session, mailbox_id: int) -> bool:
        return session.selected is not None and session.selected.mailbox_id == mailbox_id

    def _group_for(self, name: str) -> EventGroup | None:
        for group in self.groups:
            if group.filter == "PERSONAL":
                return group
            if group.filter == "INBOXES" and name == "INBOX":
                return group
            if group.filter == "SUBSCRIBED" and name in self.subscribed:
                return group
            if group.filter == "MAILBOXES" and name in group.mailboxes:
                return group
            if group.filter == "SUBTREE" and any(name == m or name.startswith(m + "/") for m in group.mailboxes):
                return group
        return None

    def wants(self, name: str, event: str) -> bool:
        group = self._group_for(name)
        return group is not None and event in group.events

    def collect(self, session, event) -> None:
        """Note one store event; the selected mailbox's own news is ``sync``'s."""
        if isinstance(event, Overflowed):
            self.overflowed = True
        elif not isinstance(event, MailboxChanged):
            return
        elif event.kind == "subscriptions":
            self.due_subscriptions = True
        elif event.kind in NAME_KINDS:
            self.due_names.append((event.kind, event.mailbox_id))
        elif event.kind in MESSAGE_EVENT_OF_KIND and not self.is_selected(session, event.mailbox_id):
            self.due_status.setdefault(event.mailbox_id, set()).add(MESSAGE_EVENT_OF_KIND[event.kind])

    def report(self, session) -> None:
        """Tell the client the news of other mailboxes, names and subscriptions."""
        if self.overflowed:
            # RFC 5465 (NOTIFICATIONOVERFLOW): say so and stop, as if NOTIFY NONE
            session.send(replies.ok(None, "Too many changes, notifications are off", "NOTIFICATIONOVERFLOW"))
            session.notify = None
            return
        if self.due_names:
            self._report_names(session)
        if self.due_subscriptions:
            self._report_subscriptions(session)
        due, self.due_status = self.due_status, {}
        for mailbox_id, events in sorted(due.items()):
            name = self.names.get(mailbox_id)
            if name is None or self.is_selected(session, mailbox_id):
                continue
            group = self._group_for(name)
            if group is not None and events & group.events:
                self.send_status(session, name)

    def send_status(self, session, name: str) -> None:
        """RFC 5465 message events: a STATUS response for a mailbox that is not selected.

        MESSAGES, UIDNEXT and UIDVALIDITY tell of new and expunged messages; a client that
        follows FlagChange also gets HIGHESTMODSEQ, which moves with every flag change.
        """
        mailbox = session.store.get_mailbox(session.user.id, name)
        if mailbox is None:
            return  # deleted meanwhile: MailboxName tells of that
        items = ("MESSAGES", "UIDNEXT", "UIDVALIDITY")
        if self.wants(name, "FLAGCHANGE"):
            items += ("HIGHESTMODSEQ",)
        try:
            session._send_status(mailbox, items)
        except NotFound:
            pass

    def _report_names(self, session) -> None:
        """RFC 5465 MailboxName: LIST for a created, deleted or renamed mailbox."""
        before = self.names
        self._reload(session)
        due, self.due_names = self.due_names, []
        for kind, mailbox_id in due:
            old, new = before.get(mailbox_id), self.names.get(mailbox_id)
            if kind == "created" and new is not None and self.wants(new, "MAILBOXNAME"):
                session.send(self._list_line(session, "()", new))
            elif kind == "deleted" and old is not None and self.wants(old, "MAILBOXNAME"):
                session.send(self._list_line(session, "(\\NonExistent)", old))
            elif kind == "renamed" and old is not None and new is not None and old != new \
                    and (self.wants(new, "MAILBOXNAME") or self.wants(old, "MAILBOXNAME")):
                # RFC 5465 MailboxName with RFC 5258: the old name rides in an OLDNAME extended item
                session.send(self._list_line(session, "()", new, b' ("OLDNAME" (' +
                                             replies.mailbox_name(old, session.utf8) + b"))"))

    def _report_subscriptions(self, session) -> None:
        """RFC 5465 SubscriptionChange: LIST with \\Subscribed for a new subscription; without it for a dropped one."""
        before = self.subscribed
        self.subscribed = session.store.subscriptions(session.user.id)
        self.due_subscriptions = False
        for name in sorted(self.subscribed - before):
            if self.wants(name, "SUBSCRIPTIONCHANGE"):
                session.send(self._list_line(session, "(\\Subscribed)", name))
        # a name no longer subscribed has left the SUBSCRIBED filter: it was followed through it until now
        through_subscribed = next((g.events for g in self.groups if g.filter == "SUBSCRIBED"), frozenset())
        for name in sorted(before - self.subscribed):
            if self.wants(name, "SUBSCRIPTIONCHANGE") or "SUBSCRIPTIONCHANGE" in through_subscribed:
                session.send(self._list_line(session, "()", name))

    @staticmethod
    def _list_line(session, attrs: str, name: str, extra: bytes = b"") -> bytes:
        return (b"* LIST " + attrs.encode("ascii") + b' "/" ' + replies.mailbox_name(name, session.utf8)
                + extra + b"\r\n")

    def new_messages(self, session, rows) -> None:
        """RFC 5465 MessageNew: FETCH with the asked-for attributes of new messages in the selected mailbox."""
        group = self.selected_group
        if group is None or not group.fetch_atts or "MESSAGENEW" not in group.events:
            return
        renderers = session._item_renderers(group.fetch_atts)
        needs_bytes = any(a.name not in _WITHOUT_BYTES or a.section is not None for a in group.fetch_atts)
        batch: list = []
        size = 0
        for row in rows:
            batch.append(row)
            size += row.size
            if size >= NEWS_BATCH_BYTES:
                self._fetch_lines(session, batch, renderers, needs_bytes)
                batch, size = [], 0
        if batch:
            self._fetch_lines(session, batch, renderers, needs_bytes)

    @staticmethod
    def _fetch_lines(session, rows, renderers, needs_bytes: bool) -> None:
        blob_ids = [row.blob_id for row in rows]
        forms = session.store.get_imap_forms(blob_ids)  # missing for a message expunged meanwhile
        raws = session.store.get_raws(blob_ids) if needs_bytes else {}
        for row in rows:
            if row.blob_id not in forms or (needs_bytes and row.blob_id not in raws):
                continue  # expunged meanwhile: the EXPUNGE follows
            items = b" ".join(render(row, forms[row.blob_id], raws.get(row.blob_id)) for render in renderers)
            session.send(b"* %d FETCH (%b)\r\n" % (session.selected.seq_of(row.uid), items))
