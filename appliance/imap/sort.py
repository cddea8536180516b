"""SORT and THREAD (RFC 5256, RFC 5957), ESORT and search contexts (RFC 5267).

Mixed into ``ImapSession``: the handlers use its selected mailbox, its shared search
evaluation (``search_rows``) and its reply plumbing. The order of a SORT comes from the
store (``sorted_uids``), which keeps each message's keys from its arrival; the search
criteria only decide which messages take part.

A search context (RETURN (UPDATE), RFC 5267 §4.3) lives in the selection, so it ends
with it. Each time the session tells the client about changes, the context's result is
computed again and the difference goes out as ADDTO/REMOVEFROM: removals before the
EXPUNGE responses they precede, additions after the EXISTS that makes their numbers valid.
"""

from __future__ import annotations

import contextlib
import gc
import re
from dataclasses import dataclass
from typing import Callable

from appliance.imap import esearch, replies
from appliance.imap.errors import CommandSyntaxError, UserError
from appliance.imap.search import And, Key
from appliance.imap.thread import Message, ReferencesIndex, ordered_subject, references, render

CHARSETS = ("UTF-8", "US-ASCII")
CAPABILITIES = ("SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "ESORT",
                "CONTEXT=SEARCH", "CONTEXT=SORT")
MAX_CONTEXTS = 8  # updating contexts per selection; RFC 5267 §4.3.1 asks for at least one


@dataclass
class SearchContext:
    """One RETURN (UPDATE) search or sort, kept until CANCELUPDATE or the end of the selection."""

    uid: bool  # UID SEARCH / UID SORT: updates carry UIDs, else sequence numbers
    criteria: And
    order: tuple[tuple[str, bool], ...] | None  # the SORT order; None for SEARCH (positions are 0)
    results: list[int]  # the UIDs of the result as the client now knows it, in order


class ThreadAnswer:
    """THREAD's thread lists for some messages, by UID, shared by sessions until the
    mailbox changes (``Store.mailbox_answer``)."""

    def __init__(self, uids: frozenset[int], by_uid: bytes) -> None:
        self.uids = uids  # the messages it covers
        self.by_uid = by_uid  # the reply's thread lists with UIDs

    @classmethod
    def of(cls, messages: list[Message], algorithm: str) -> ThreadAnswer:
        return cls(frozenset(m.uid for m in messages), render(ALGORITHMS[algorithm](messages), int))

    def __len__(self) -> int:
        return len(self.uids)

    def numbered(self, number: Callable[[int], int]) -> bytes:
        """The thread lists with ``number(uid)`` for each UID (sequence numbers)."""
        return _NUMBER.sub(lambda found: b"%d" % number(int(found[0])), self.by_uid)


_NUMBER = re.compile(rb"\d+")


class MailboxThreads:
    """A whole mailbox's threads, kept by the store (a ``Derived``) so that new mail is
    threaded in place where it can be (``ReferencesIndex.add``)."""

    def __init__(self, messages: list[Message], algorithm: str) -> None:
        self._index = ReferencesIndex(messages) if algorithm == "REFERENCES" else None
        self._answer = ThreadAnswer.of(messages, algorithm) if self._index is None else None

    def answer(self) -> ThreadAnswer:
        if self._answer is None:
            self._answer = ThreadAnswer(frozenset(self._index.uids()), self._index.render_by_uid())
        return self._answer

    def update(self, messages: Callable[[list[int]], list[Message]], added, removed) -> bool:
        """Thread the messages of ``added`` in place: False when it cannot (an expunge, ORDEREDSUBJECT,
        a message that changes other threads): then the mailbox is threaded afresh."""
        index = self._index
        if index is None or any(uid in index for uid in removed):
            return False  # an expunged message's links decided where later messages went
        new = [uid for uid in added if uid not in index]
        if new:
            for message in messages(new):
                if not index.add(message):
                    return False
            self._answer = None
        return True


ALGORITHMS = {"REFERENCES": references, "ORDEREDSUBJECT": ordered_subject}


@contextlib.contextmanager
def _no_collection():
    """No cyclic garbage collection while a THREAD answer is built.

    It makes a record and a linked container per message: for a big mailbox, those
    allocations set off collections that each walk the whole server's heap, and the build
    took several times as long (measured: 25 ms without, up to 150 ms with). Another
    thread may have paused collection too; whoever paused it first turns it back on.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def numbers_line(numbers) -> bytes:
    """ " 3 1 2": the numbers of a SORT or SEARCH reply."""
    return (" " + " ".join(map(str, numbers))).encode("ascii") if numbers else b""


class SortCommands:
    """The SORT, THREAD and CANCELUPDATE handlers of ``ImapSession``."""

    def _check_charset(self, charset: str) -> None:
        # RFC 5256 §3: an unsupported charset gets NO [BADCHARSET] with the ones we take
        if charset not in CHARSETS:
            raise UserError("Unsupported charset", "BADCHARSET (" + " ".join(CHARSETS) + ")")

    def _matching(self, criteria: And) -> set[int]:
        """UIDs of the known, live messages that match ``criteria``."""
        sel = self.selected
        if criteria.keys == (Key("ALL"),):
            return {u for u in sel.uids if u not in sel.gone}  # no rows to read for the usual case
        return {row.uid for row in self.search_rows(criteria)}

    def _sorted(self, order, criteria: And) -> list[int]:
        wanted = self._matching(criteria)
        ordered = self.store.sorted_uids(self.selected.mailbox_id, order)
        if len(wanted) == len(ordered) and wanted.issuperset(ordered):
            return list(ordered)  # the client knows the whole mailbox and asked for all of it
        return [u for u in ordered if u in wanted]

    def cmd_SORT(self, cmd) -> None:
        sel = self.selected
        self._check_charset(cmd.charset)
        if cmd.returns is not None and "UPDATE" in cmd.returns:
            self._check_new_context(cmd.tag)
        uids = self._sorted(cmd.order, cmd.criteria)

        numbers = uids if cmd.UID else [sel.seq_of(u) for u in uids]
        if cmd.returns is None:
            self.send(b"* SORT" + numbers_line(numbers) + b"\r\n")
        else:
            # RFC 5267 §3.1: MIN and MAX are the first and last in sort order, ALL keeps the order
            self.send(esearch.esearch_line(cmd.tag, cmd.UID, numbers, cmd.returns, cmd.partial, None, ordered=True))
            if "UPDATE" in cmd.returns:
                self._start_context(cmd.tag, SearchContext(cmd.UID, cmd.criteria, cmd.order, uids))
        self.ok(cmd, "SORT completed")

    cmd_UID_SORT = cmd_SORT

    def cmd_THREAD(self, cmd) -> None:
        sel = self.selected
        self._check_charset(cmd.charset)
        wanted = self._matching(cmd.criteria)

        def messages(uids: list[int] | None = None) -> list[Message]:
            return list(map(Message._make, self.store.thread_keys(sel.mailbox_id, uids)))

        with _no_collection():
            answer = self.store.mailbox_answer(
                sel.mailbox_id, ("THREAD", cmd.algorithm), lambda: MailboxThreads(messages(), cmd.algorithm),
                lambda threads, added, removed: threads.update(messages, added, removed))
            if answer.uids != wanted:  # some of the mailbox only: thread just those
                answer = ThreadAnswer.of([m for m in messages() if m.uid in wanted], cmd.algorithm)
        lists = answer.by_uid if cmd.UID else answer.numbered(sel.seq_of)
        # thread-data = "THREAD" [SP 1*thread-list] (RFC 5256 §5)
        self.send(b"* THREAD" + (b" " + lists if lists else b"") + b"\r\n")
        self.ok(cmd, "THREAD completed")

    cmd_UID_THREAD = cmd_THREAD

    # -- search contexts (RFC 5267 §4) -------------------------------------------------

    def _check_new_context(self, tag: bytes) -> None:
        # RFC 5267 §4.3: UPDATE with the tag of a live context is BAD
        if tag in self.selected.contexts:
            raise CommandSyntaxError("Tag reuse: that tag names an updating search")

    def start_search_context(self, cmd, criteria: And, uids: list[int]) -> None:
        """SEARCH RETURN (UPDATE): keep the result up to date (CONTEXT=SEARCH)."""
        self._start_context(cmd.tag, SearchContext(cmd.UID, criteria, None, uids))

    def _start_context(self, tag: bytes, context: SearchContext) -> None:
        contexts = self.selected.contexts
        if len(contexts) >= MAX_CONTEXTS:
            # RFC 5267 §4.3.1: the command still answers, without updates
            self.send(replies.no(None, "Too many updating searches", "NOUPDATE " + replies.quote(tag).decode()))
            return
        contexts[tag] = context

    def cmd_CANCELUPDATE(self, cmd) -> None:
        contexts = self.selected.contexts
        unknown = [t for t in cmd.tags if t not in contexts]
        if unknown:
            raise CommandSyntaxError("No updating search with that tag")
        for tag in cmd.tags:
            del contexts[tag]
        self.ok(cmd, "CANCELUPDATE completed")

    def update_contexts(self) -> None:
        """Send ADDTO/REMOVEFROM for every context whose result changed (RFC 5267 §4.3.2)."""
        sel = self.selected
        if sel is None or not sel.contexts:
            return
        for tag, context in sel.contexts.items():
            if context.order is None:
                new = sorted(self._matching(context.criteria))
            else:
                new = self._sorted(context.order, context.criteria)
            if new == context.results:
                continue
            number = (lambda u: u) if context.uid else sel.seq_of
            kept, before = set(new), set(context.results)
            head = b"* ESEARCH (TAG " + replies.quote(tag) + b")" + (b" UID" if context.uid else b"")
            removed = _runs([(i, u) for i, u in enumerate(context.results) if u not in kept], removing=True)
            added = _runs([(i, u) for i, u in enumerate(new) if u not in before], removing=False)
            line = head
            for name, runs in ((b"REMOVEFROM", removed), (b"ADDTO", added)):
                if not runs:
                    continue
                if context.order is None:
                    # RFC 5267 §4.3.3: a SEARCH context's changes go at position 0, in mailbox order
                    numbers = [number(u) for _, run in runs for u in run]
                    line += b" %s (0 %s)" % (name, replies.sequence_set(numbers))
                else:
                    pairs = [b"%d %s" % (position, replies.ordered_set([number(u) for u in run])) for position, run in runs]
                    line += b" %s (%s)" % (name, b" ".join(pairs))
            self.send(line + b"\r\n")
            context.results = new


def _runs(items: list[tuple[int, int]], removing: bool) -> list[tuple[int, list[int]]]:
    """Group (index, uid) changes into (context position, uids) pairs to apply in order.

    Removals: each index is in the old list, and the removals before it have shifted it
    down. Additions: each index is the final one, and everything before it is in place.
    """
    runs: list[tuple[int, list[int]]] = []
    for done, (index, uid) in enumerate(items):
        position = index + 1 - done if removing else index + 1
        if runs and position == runs[-1][0] + (0 if removing else len(runs[-1][1])):
            runs[-1][1].append(uid)
        else:
            runs.append((position, [uid]))
    return runs
