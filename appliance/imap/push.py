"""IDLE push from one thread, so that idling clients' own threads sleep on.

Every connection has its thread, and an idling client's thread waits in poll() on its
socket. If a delivery woke the threads of the thousand clients watching a mailbox, the
thousand would queue for the GIL, twice each (to write, then to wait again), and the last
client would hear of the new mail 150–250 ms after the first. Instead, the pusher
thread hears every store event and, for each client idling on the user concerned, runs
that session's own ``sync`` and writes the result to its socket: no hand-over of the
GIL at all. Whenever that cannot be done at once — the session's thread is awake, the
socket is not writable, the news is large, or it failed — the pusher wakes the session's
thread instead, which then does exactly what it always did.
"""

from __future__ import annotations

import logging
import os
import threading

from appliance.store.events import MailboxChanged, Overflowed

log = logging.getLogger("kotakpos.imap")

# News bigger than this is written by the session's own thread: a client slow to read it
# must not hold up the pusher, and every other idler with it.
PUSH_WRITE_LIMIT = 16 * 1024


class Waker:
    """An eventfd that wakes one idling session's own thread.

    ``wake`` runs in the pusher's thread; the lock keeps it from writing to a descriptor
    number that ``close`` has already given back.
    """

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.lock = threading.Lock()
        self.closed = False

    def wake(self) -> None:
        with self.lock:
            if not self.closed:
                os.eventfd_write(self.fd, 1)

    def clear(self) -> None:
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            pass  # nothing was pending

    def close(self) -> None:
        with self.lock:
            self.closed = True
            os.close(self.fd)


class Idler:
    """One IDLE command (or a NOTIFY session between commands) as the pusher sees it.

    ``lock`` is held by the session's thread whenever it is not asleep in poll(); the
    pusher writes for the session only when it can take the lock at once.
    """

    def __init__(self, session, tell) -> None:
        self.session = session
        self.tell = tell  # writes the session's news: sync for IDLE, the NOTIFY session's own choice
        self.user_id = session.user.id
        self.lock = threading.Lock()
        self.waker = Waker()
        self.active = True  # cleared, under the lock, when the IDLE command ends
        self.failure: BaseException | None = None  # what a push raised; the session's thread raises it

    def push(self) -> None:
        """Tell the client what changed, from the pusher's thread, or wake the session's thread to."""
        if not self.lock.acquire(blocking=False):
            self.waker.wake()  # awake already: it syncs after what it is doing
            return
        try:
            if not self.active:
                return  # the IDLE ended while the pusher was on its way here
            if self.failure is None and self.session.conn.writable_now():
                self.tell()
                if self.session.conn.pending_output() <= PUSH_WRITE_LIMIT:
                    self.session.conn.flush()
                    return
        except Exception as error:
            self.failure = error
        finally:
            self.lock.release()
        self.waker.wake()


def until_client_speaks(session, tell, start=None) -> None:
    """Tell the client of changes as they happen, until it sends something (IDLE, NOTIFY).

    ``tell()`` writes the news; ``start`` runs once the pusher listens (IDLE's "+ idling").
    While the client is silent the pusher calls ``tell`` itself, or wakes this thread to
    (see ``Idler.push``).
    """
    idler = Idler(session, tell)
    pusher = session.ctx.idle_pusher
    conn = session.conn
    idler.lock.acquire()
    pusher.add(idler)  # listen first, then catch up: an event between the two still reaches us
    try:
        if start is not None:
            start()
        tell()
        conn.flush()
        with conn.between_commands():
            # TLS is asked while the lock is held: the pusher may write through it otherwise
            while not conn.has_buffered_line() and not conn.tls_pending():
                idler.lock.release()
                try:
                    client_spoke = session._wait(idler.waker)
                finally:
                    idler.lock.acquire()
                if idler.failure is not None:
                    raise idler.failure
                if client_spoke:
                    break
                idler.waker.clear()
                tell()
                conn.flush()
    finally:
        idler.active = False
        pusher.remove(idler)
        idler.lock.release()
        idler.waker.close()


class IdlePusher:
    """The thread that pushes store events to idling IMAP clients (see the module docstring)."""

    def __init__(self, store) -> None:
        self._lock = threading.Lock()
        self._idlers: dict[int, list[Idler]] = {}  # user id -> idlers; replaced, never changed in place
        # Woken only for users someone idles for: a delivery to anyone else costs no wake-up.
        # An idler listens before it catches up (``until_client_speaks``), so an event left
        # out just before it was added is in what it catches up with.
        self._events = store.subscribe(
            wants=lambda event: isinstance(event, MailboxChanged) and event.user_id in self._idlers)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="imap-idle-push", daemon=True)
        self._thread.start()

    def add(self, idler: Idler) -> None:
        with self._lock:
            self._idlers[idler.user_id] = self._idlers.get(idler.user_id, []) + [idler]

    def remove(self, idler: Idler) -> None:
        with self._lock:
            rest = [i for i in self._idlers.get(idler.user_id, []) if i is not idler]
            if rest:
                self._idlers[idler.user_id] = rest
            else:
                self._idlers.pop(idler.user_id, None)

    def _run(self) -> None:
        while not self._stopping:
            self._push_burst()

    def _push_burst(self) -> None:
        """Wait up to a second for events, then push them (Subscription.burst says why a function)."""
        events = self._events.burst(1.0)
        if not events:
            return
        if any(isinstance(e, Overflowed) for e in events):
            self._events.overflowed = False
            users = list(self._idlers)  # missed some: every idler looks for itself
        else:
            users = {e.user_id for e in events if isinstance(e, MailboxChanged)}
        for user_id in users:
            for idler in self._idlers.get(user_id, ()):
                try:
                    idler.push()
                except Exception:  # one client's trouble must not stop the others' news
                    log.exception("IDLE push to session %s failed", idler.session.conn.info.id)

    def stop(self) -> None:
        self._stopping = True
        self._events.close()
        self._thread.join(5)
