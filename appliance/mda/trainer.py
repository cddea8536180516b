"""The MDA's listener on store events: Bayes training from the users' moves, read receipts.

It subscribes to every mailbox change (after commit), so it needs no hook in IMAP or
POP3 and sees what any client does:

- a message appearing in a \\Junk mailbox trains that user's classifier as spam —
  unless our own filter filed it there (its X-Spam-Status says Yes), which would only
  teach the classifier what it already believed;
- a message appearing elsewhere that was trained as spam or filed as spam (moved out
  of Junk) is learned as ham;
- a message getting \\Seen, while the user has read-receipt requests pending, is handed
  to ``on_seen`` (the receipts module decides whether to send an MDN);
- a report (multipart/report: DSN, MDN) arriving is handed to ``on_arrival`` (the ledger).

Work runs in this one thread, off every client's path; an error is logged and the
thread goes on. It wakes once per burst of events, not once per event: after the first
it gathers what follows for ``GATHER`` seconds, and arrivals in one mailbox that follow
each other are looked at in one read. While it gathers, the store's writer hands it
events without having to wake it.
"""

from __future__ import annotations

import logging
import threading

from appliance import mime
from appliance.mda import bayes
from appliance.store import MailboxChanged, NotFound, Overflowed

log = logging.getLogger("kotakpos.mda")

SEEN = "\\Seen"
GATHER = 0.05  # seconds to collect the events that follow the first, under load


def merged(events: list) -> list:
    """The events in order, runs of "exists" in the same mailbox joined into one."""
    out: list = []
    for event in events:
        last = out[-1] if out else None
        if (isinstance(event, MailboxChanged) and event.kind == "exists" and isinstance(last, MailboxChanged)
                and last.kind == "exists" and last.mailbox_id == event.mailbox_id and last.user_id == event.user_id):
            out[-1] = MailboxChanged("exists", event.user_id, event.mailbox_id, last.uids + event.uids,
                                     max(last.modseq, event.modseq))
        else:
            out.append(event)
    return out


class Trainer:
    def __init__(self, ctx, on_seen=None, on_arrival=None):
        self.ctx = ctx
        self.store = ctx.store
        self.on_seen = on_seen  # callable(user_id, mailbox_id, MessageRow) for \Seen changes
        self.on_arrival = on_arrival  # callable(user_id, blob_id) for new reports (DSN, MDN)
        self._stop = threading.Event()
        self._subscription = self.store.subscribe()
        self._thread = threading.Thread(target=self._loop, name="mda-trainer", daemon=True)
        self.handled = 0  # events looked at, for tests that wait for the trainer

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # never started in a worker that does not train
            self._thread.join(5)
        self._subscription.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._handle_burst()

    def _handle_burst(self) -> None:
        """Wait up to half a second for an event, gather what follows it, handle them all
        (Subscription.burst says why a function of its own)."""
        events = self._subscription.burst(0.5)
        if not events:
            return
        self._stop.wait(GATHER)
        events += self._subscription.drain()
        for event in merged(events):
            try:
                if isinstance(event, MailboxChanged):
                    self.handle(event)
                elif isinstance(event, Overflowed):
                    log.warning("mda trainer fell behind; some moves were not learned from")
            except Exception:
                log.exception("mda trainer: handling %r failed", event)
        self.handled += len(events)

    def handle(self, event: MailboxChanged) -> None:
        if event.kind == "flags":
            if self.on_seen is None or not self.store.has_pending_receipts(event.user_id):
                return
            if self.store.get_mailbox_by_id(event.mailbox_id) is None:
                return
            for row in self.store.message_rows(event.mailbox_id, event.uids):
                if SEEN in row.flags:
                    self.on_seen(event.user_id, event.mailbox_id, row)
            return
        if event.kind != "exists":
            return
        # Every delivery lands here: one read for the mailbox and what is known of its new rows.
        found = self.store.arrivals(event.user_id, event.mailbox_id, event.uids)
        if found is None:
            return  # the mailbox is gone
        special_use, arrivals = found
        junk = special_use == "\\Junk"
        for row, report, filed_as_spam, trained_spam in arrivals:  # rows moved on meanwhile are absent
            if junk and not filed_as_spam:
                self.learn(event.user_id, row.blob_id, spam=True)
            elif not junk and (filed_as_spam or trained_spam):
                # moved out of Junk: the user says it is not spam
                self.learn(event.user_id, row.blob_id, spam=False)
            if report and self.on_arrival is not None:
                self.on_arrival(event.user_id, row.blob_id)

    def learn(self, user_id: int, blob_id: int, spam: bool) -> None:
        try:
            sha = self.store.blob_sha256(blob_id)
            info = self.store.get_info(blob_id)
            raw = self.store.get_raw(blob_id)
        except NotFound:
            return
        author = mime.author(mime.header_fields(raw[:info.root.body_start]))
        if self.store.bayes_learn(user_id, sha, bayes.tokens(info, mime.body_text(raw, info), author), spam):
            self.ctx.count("mda.learned_spam" if spam else "mda.learned_ham")
            log.info("mda: user %d taught %s", user_id, "spam" if spam else "ham")
