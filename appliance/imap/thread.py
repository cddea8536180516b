"""THREAD (RFC 5256 §3): the ORDEREDSUBJECT and REFERENCES algorithms and the reply's lists.

Works on ``Message`` records (the stored sort keys of each message), without I/O; the
session turns the UIDs of the resulting trees into sequence numbers or keeps them.
REFERENCES keeps what it built (``ReferencesIndex``), so that new mail is threaded in.
Threads can be thousands of messages deep (a long discussion where each reply quotes
the one before), so every walk here is a loop, never a recursion.
"""

from __future__ import annotations

import bisect
from typing import Callable, Iterable, NamedTuple


class Message(NamedTuple):
    """One message as THREAD sees it; strings are the stored casemap keys."""

    uid: int
    sent: float  # the Date header, or INTERNALDATE when it has none (RFC 5256 §3 "sent date")
    subject: str  # base subject
    reply: bool  # the subject carried a Re:/Fwd: marker
    message_id: str
    references: tuple[str, ...]


class Node:
    """A container of a thread tree: a message, or a dummy (message None) holding children together."""

    __slots__ = ("message", "children", "parent")  # ten thousand of them per THREAD of a big mailbox

    def __init__(self, message: Message | None = None, parent: Node | None = None) -> None:
        self.message = message
        self.children: list[Node] = []
        self.parent = parent


def _sort_key(node: Node) -> tuple[float, int]:
    # the sent date, then the sequence (here UID) order; a dummy sorts as its first child
    while node.message is None:
        node = node.children[0]
    return node.message.sent, node.message.uid


def ordered_subject(messages: Iterable[Message]) -> list[Node]:
    """THREAD=ORDEREDSUBJECT: one thread per base subject, every later message a child of the first."""
    groups: dict[str, list[Message]] = {}
    for message in sorted(messages, key=lambda m: (m.subject, m.sent, m.uid)):
        groups.setdefault(message.subject, []).append(message)
    roots = []
    for members in groups.values():
        root = Node(members[0])
        root.children = [Node(m, parent=root) for m in members[1:]]
        roots.append(root)
    roots.sort(key=_sort_key)
    return roots


def _is_ancestor(candidate: Node, node: Node) -> bool:
    """Whether ``candidate`` is ``node`` or one of its ancestors."""
    while node is not None:
        if node is candidate:
            return True
        node = node.parent
    return False


def _unlink(node: Node) -> None:
    if node.parent is not None:
        node.parent.children.remove(node)
        node.parent = None


def _link(parent: Node, child: Node) -> None:
    _unlink(child)
    child.parent = parent
    parent.children.append(child)


def references(messages: Iterable[Message]) -> list[Node]:
    """THREAD=REFERENCES, RFC 5256 §3 steps 1 to 7."""
    return ReferencesIndex(messages).roots


class ReferencesIndex:
    """THREAD=REFERENCES over a mailbox, kept so that a new message is threaded in place.

    Step 1 is a pass over the messages in UID order, and a new message has the highest
    UID: it continues that pass. Its container table (``_containers``) is kept apart
    from the threads steps 2 to 7 make of a copy (``roots``). Where the new message only
    hangs a leaf under a message already there, or starts a thread whose base subject no
    other thread has, steps 2 to 7 would change nothing else, and ``add`` puts it in
    place; otherwise it says so and the caller threads the mailbox afresh.
    """

    def __init__(self, messages: Iterable[Message]) -> None:
        self._containers: dict[str, Node] = {}  # step 1's id table: message id (or "\0uid") -> container
        self._last_uid = 0  # the highest UID threaded
        for message in messages:
            self._link(message)
        self._thread()

    def __contains__(self, uid: int) -> bool:
        return uid in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def uids(self):
        return self._nodes.keys()

    def _link(self, message: Message) -> Node:
        """Step 1 for one message."""
        by_id = self._containers
        self._last_uid = max(self._last_uid, message.uid)
        node = by_id.get(message.message_id) if message.message_id else None
        if node is None or node.message is not None:
            # step 1A: a missing or duplicate Message-ID gets a container of its own
            node = Node()
            if message.message_id and message.message_id not in by_id:
                by_id[message.message_id] = node
            else:
                by_id[f"\0{message.uid}"] = node
        node.message = message
        # step 1B: link the references in order, parent to child, where no link is yet and
        # no loop would come of it
        chain = []
        for ref in message.references:
            container = by_id.get(ref)
            if container is None:
                container = by_id[ref] = Node()
            chain.append(container)
        for parent, child in zip(chain, chain[1:]):
            if child.parent is None and not _is_ancestor(child, parent):
                _link(parent, child)
        # step 1C: the last reference is the parent, replacing any parent a truncated
        # References gave this message before; no references, no parent
        if chain and not _is_ancestor(node, chain[-1]):
            if node.parent is not chain[-1]:
                _link(chain[-1], node)
        elif not chain:
            _unlink(node)
        return node

    def _thread(self) -> None:
        """Steps 2 to 7, on a copy of step 1's containers."""
        copies = {id(node): Node(node.message) for node in self._containers.values()}
        for node in self._containers.values():
            copy = copies[id(node)]
            if node.parent is not None:
                copy.parent = copies[id(node.parent)]
            copy.children = [copies[id(child)] for child in node.children]
        self._nodes = {copy.message.uid: copy for copy in copies.values() if copy.message is not None}
        # step 2 (and 3: the id table is not needed past here)
        roots = [copy for copy in copies.values() if copy.parent is None]
        if len(self._nodes) < len(copies):  # only references can make dummies
            roots = _prune(roots)
        roots.sort(key=_sort_children_first)  # step 5
        places = {id(root): _sort_key(root) for root in roots}
        self._latest: dict[str, tuple[float, int]] = {}  # base subject -> step 5's last root of it
        for root in roots:
            self._latest[_subject_of(root).subject] = places[id(root)]
        # step 6; per base subject, the root 6A to 6C chose and the thread they all became
        threads, self._chosen, self._gathered = _gather_by_subject(roots)
        self._places = [places[id(stood_for)] for stood_for, _ in threads]  # step 5's order of the threads
        self.roots = [root for _, root in threads]
        for root in self.roots:  # step 7
            _sort_tree(root)
        self._rendered: dict[int, bytes] = {}  # id of a root -> its thread list by UID

    def add(self, message: Message) -> bool:
        """Thread one more message, of a higher UID than any before, in place: True, or
        False (nothing changed) when steps 2 to 7 could move more than the message itself."""
        if message.uid <= self._last_uid:
            return False
        by_id = self._containers
        own = by_id.get(message.message_id) if message.message_id else None
        if own is not None and own.message is None:
            return False  # earlier messages referred to it: it fills their dummy
        chain = [by_id.get(ref) for ref in message.references]
        if None in chain:
            return False  # a new dummy
        for parent, child in zip(chain, chain[1:]):
            if child.parent is None and not _is_ancestor(child, parent):
                return False  # step 1B would join threads
        if chain and chain[-1].message is None:
            return False  # under a dummy: step 4 may lift it, step 5 may sort by it
        subject = message.subject
        node = Node(message)
        key = _sort_key(node)
        if not chain and subject and subject in self._latest:
            # step 6 gathers it with the threads of its subject: in place only as the last of them
            chosen = self._chosen[subject]
            if key < self._latest[subject] or (chosen.message is not None and chosen.message.reply
                                               and not message.reply):
                return False
        self._link(message)
        self._nodes[message.uid] = node
        if chain:
            # a leaf under a message: step 7 puts it among its siblings by sent date
            parent = self._nodes[chain[-1].message.uid]
            self._add_child(parent, node)
            while parent.parent is not None:
                parent = parent.parent
            self._rendered.pop(id(parent), None)
        elif subject in self._latest and subject:
            self._latest[subject] = key
            self._gather(subject, node)
        else:
            # a thread of its own, where step 5 puts it
            place = bisect.bisect(self._places, key)
            self._places.insert(place, key)
            self.roots.insert(place, node)
            if subject:
                self._latest[subject] = key
                self._chosen[subject] = self._gathered[subject] = node
        return True

    @staticmethod
    def _add_child(parent: Node, node: Node) -> None:
        node.parent = parent
        parent.children.insert(bisect.bisect(parent.children, _sort_key(node), key=_sort_key), node)

    def _gather(self, subject: str, node: Node) -> None:
        """Step 6D for a new root that comes last of its subject in step 5's order."""
        thread = self._gathered[subject]
        self._rendered.pop(id(thread), None)
        if thread.message is None or (node.message.reply and not thread.message.reply):
            self._add_child(thread, node)
            return
        dummy = Node()  # two threads of one subject, neither a reply to the other
        self.roots[self.roots.index(thread)] = dummy
        self._gathered[subject] = dummy
        self._add_child(dummy, thread)
        self._add_child(dummy, node)

    def render_by_uid(self) -> bytes:
        """``render(self.roots, int)``, each thread's list kept until a message joins it."""
        rendered = self._rendered
        out = []
        for root in self.roots:
            lists = rendered.get(id(root))
            if lists is None:
                lists = rendered[id(root)] = render([root], int)
            out.append(lists)
        return b"".join(out)


def _prune(roots: list[Node]) -> list[Node]:
    """Step 4: drop empty dummies; lift a dummy's children into its place, except for a
    dummy at the top that holds several threads together."""
    # Children are pruned before their parent: walk in pre-order, then handle it reversed.
    order: list[Node] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):
        if not any(child.message is None for child in node.children):
            continue
        kept: list[Node] = []
        for child in node.children:
            if child.message is None:
                kept.extend(child.children)  # an empty dummy adds nothing
            else:
                kept.append(child)
        for child in kept:
            child.parent = node
        node.children = kept
    out = []
    for root in roots:
        if root.message is None and len(root.children) <= 1:
            for child in root.children:
                child.parent = None
            out.extend(root.children)
        else:
            out.append(root)
    return out


def _sort_children_first(node: Node) -> tuple[float, int]:
    if node.message is None:
        node.children.sort(key=_sort_key)
    return _sort_key(node)


def _subject_of(node: Node) -> Message:
    return node.message if node.message is not None else node.children[0].message


def _gather_by_subject(roots: list[Node]) -> tuple[list[tuple[Node, Node]], dict[str, Node], dict[str, Node]]:
    """Step 6: threads whose first messages share a base subject become one thread.

    Returns each thread with the root of step 5's order whose place it takes, and per
    base subject the root 6A to 6C chose and the thread all its roots became.
    """
    table: dict[str, Node] = {}
    for node in roots:  # 6A to 6C
        subject = _subject_of(node).subject
        if not subject:
            continue
        held = table.get(subject)
        if held is None or (node.message is None and held.message is not None) or (
                held.message is not None and held.message.reply and node.message is not None
                and not node.message.reply):
            table[subject] = node
    chosen = dict(table)
    replaced: dict[int, Node] = {}  # id of a root -> the dummy that took its place
    for node in roots:  # 6D
        subject = _subject_of(node).subject
        held = table.get(subject) if subject else None
        if held is None or held is node or node.parent is not None:
            continue
        if held.message is None and node.message is None:
            for child in node.children:
                child.parent = held
            held.children.extend(node.children)
            node.children = []
        elif held.message is None:
            _link(held, node)
        elif node.message is not None and node.message.reply and not held.message.reply:
            _link(held, node)
        else:
            dummy = Node()
            _link(dummy, held)
            _link(dummy, node)
            table[subject] = dummy
            replaced[id(held)] = dummy
    out = []
    for node in roots:
        if id(node) in replaced:
            out.append((node, replaced[id(node)]))
        elif node.parent is None and (node.message is not None or node.children):
            out.append((node, node))
    return out, chosen, table


def _sort_tree(root: Node) -> None:
    """Step 7: siblings in order of sent date, deepest first (a dummy sorts as its first child)."""
    order: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):
        if len(node.children) > 1:
            node.children.sort(key=_sort_key)


def render(roots: list[Node], number: Callable[[int], int]) -> bytes:
    """The THREAD response's thread lists (RFC 5256 §4): ``(1 2 (3)(4 5))`` and so on.

    A message with one child continues its list with the child; several children each
    get a nested list. ``number`` maps a UID to what the client is to see.
    """
    out: list[bytes] = []
    for root in roots:
        out.append(b"(")
        stack: list[Node | bytes] = [b")", root]  # nodes to write, and parentheses
        spaced = False  # whether the next number needs a space before it
        while stack:
            item = stack.pop()
            if isinstance(item, bytes):
                out.append(item)
                spaced = False
                continue
            if item.message is not None:
                out.append(b"%s%d" % (b" " if spaced else b"", number(item.message.uid)))
                spaced = True
            children = item.children
            if len(children) == 1:
                stack.append(children[0])
            elif children:
                if spaced:
                    out.append(b" ")
                for child in reversed(children):
                    stack.extend((b")", child, b"("))
    return b"".join(out)
