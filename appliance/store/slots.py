"""The connection slots of the serving processes: a table in a shared mapping, under an ``flock``.

Every admitted connection holds one slot (its session id, the pid serving it, its client's
address) until it ends, and the server-wide limits — connections in all, and per client
address — are checked and a slot taken in one step under the lock. It is the only shared
state a connection must touch on its way in and out, so it is kept as cheap as that allows:
a file beside the runtime database (``<runtime>-slots``) that every process maps, read and
written with ``struct`` under an ``flock`` of the file. Taking and freeing a slot runs no
SQLite statement: a statement gives up the interpreter lock several times, and each time a
busy process's other threads may take it and have to be switched back from; in a server
flooded with new connections the two statements per connection cost far more than their
own CPU (bench/README.md, "What a new connection costs").

Layout: a header (the next session id, the slots in use, the entries the file holds) and
entries of 32 bytes (session id, 0 when free; pid; a 16-byte key of the client's address).
The file grows, doubling, when every entry is taken; it never shrinks until the server's
next start removes it (``runtime.reset``). A process killed inside the lock may leave the
count one off; ``forget`` (a dead process's slots are freed) counts the entries again.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
from pathlib import Path

from appliance.store.db import create_private

_HEADER = struct.Struct("<QII")     # next session id (0: none given yet), slots in use, entries in the file
_ENTRY = struct.Struct("<QI4x16s")  # session id (0: free), pid, key of the client's address
FIRST_ENTRIES = 64
_KEY_AT = 16                        # where an entry's key starts within it
_FREE = bytes(_ENTRY.size)


def address_key(peer_ip: str) -> bytes:
    """A fixed-size key for an address, so that a byte search of the mapping counts its slots
    (a 128-bit hash: a free entry's zeros, or another address's key, it matches only by a
    chance of 2^-128)."""
    return hashlib.blake2b(peer_ip.encode(), digest_size=16).digest()


class Slots:
    """The slot table as one process uses it. Thread-safe."""

    def __init__(self, path: Path):
        self.path = create_private(path)
        self._fd = os.open(self.path, os.O_RDWR)
        self._lock = threading.Lock()
        with self._locked():
            if os.fstat(self._fd).st_size < _HEADER.size:  # new: the first process to open it lays it out
                os.ftruncate(self._fd, _HEADER.size + FIRST_ENTRIES * _ENTRY.size)
                os.pwrite(self._fd, _HEADER.pack(0, 0, FIRST_ENTRIES), 0)
            self._map = self._mapping()

    def close(self) -> None:
        with self._lock:
            self._map.close()
            os.close(self._fd)

    # -- the lock and the mapping ------------------------------------------------------------

    def _mapping(self) -> mmap.mmap:
        return mmap.mmap(self._fd, os.fstat(self._fd).st_size)

    def _locked(self):
        return _Locked(self)

    def _entries(self) -> int:
        """Entries the file holds now, the mapping made to cover them (under the lock)."""
        entries = _HEADER.unpack_from(self._map)[2]
        if _HEADER.size + entries * _ENTRY.size > len(self._map):  # another process grew the file
            # The old mapping is left to the collector, not closed: ``count`` may be reading it.
            self._map = self._mapping()
        return entries

    def _find(self, pattern: bytes, offset: int, start: int, end: int) -> int:
        """Index of the first entry from ``start`` whose bytes at ``offset`` are ``pattern``; -1 if none."""
        m = self._map
        pos = _HEADER.size + start * _ENTRY.size + offset
        stop = _HEADER.size + end * _ENTRY.size
        while (pos := m.find(pattern, pos, stop)) >= 0:
            index, at = divmod(pos - _HEADER.size, _ENTRY.size)
            if at == offset:
                return index
            pos += 1  # the bytes matched across two fields: look on
        return -1

    # -- the operations ----------------------------------------------------------------------

    def take(self, pid: int, peer_ip: str, max_total: int, max_per_ip: int | None) -> int | None:
        """A slot for ``peer_ip`` if fewer than ``max_total`` are taken in all and fewer than
        ``max_per_ip`` for this address (None: no limit for it); returns its session id,
        unique until the table is emptied, or None when a limit is reached."""
        key = address_key(peer_ip)
        with self._locked():
            next_id, used, _ = _HEADER.unpack_from(self._map)
            entries = self._entries()
            if used >= max_total:
                return None
            if max_per_ip is not None:
                held, index = 0, -1
                while held < max_per_ip and (index := self._find(key, _KEY_AT, index + 1, entries)) >= 0:
                    held += 1
                if held >= max_per_ip:
                    return None
            index = self._find(_FREE, 0, 0, entries)
            if index < 0:
                index = entries
                self._grow(entries * 2)
            session_id = max(next_id, 1)
            _ENTRY.pack_into(self._map, _HEADER.size + index * _ENTRY.size, session_id, pid, key)
            _HEADER.pack_into(self._map, 0, session_id + 1, used + 1, _HEADER.unpack_from(self._map)[2])
            return session_id

    def free(self, session_id: int) -> None:
        """Give the session's slot back (nothing if it holds none)."""
        with self._locked():
            next_id, used, entries = _HEADER.unpack_from(self._map)
            index = self._find(struct.pack("<Q", session_id), 0, 0, self._entries())
            if index < 0:
                return
            self._map[_HEADER.size + index * _ENTRY.size:_HEADER.size + (index + 1) * _ENTRY.size] = _FREE
            _HEADER.pack_into(self._map, 0, next_id, max(used - 1, 0), entries)

    def count(self) -> int:
        """Slots taken, server-wide: one read of the mapping, no lock."""
        return _HEADER.unpack_from(self._map)[1]

    def owner(self, session_id: int) -> int | None:
        """The pid serving the session, None if it holds no slot."""
        with self._locked():
            index = self._find(struct.pack("<Q", session_id), 0, 0, self._entries())
            if index < 0:
                return None
            return _ENTRY.unpack_from(self._map, _HEADER.size + index * _ENTRY.size)[1]

    def taken(self) -> set[int]:
        """The session ids that hold a slot now."""
        with self._locked():
            entries = self._entries()
            return {session_id for session_id, _, _ in _ENTRY.iter_unpack(
                self._map[_HEADER.size:_HEADER.size + entries * _ENTRY.size]) if session_id}

    def forget(self, pid: int) -> None:
        """Free every slot of process ``pid`` (it has ended) and count the slots again."""
        with self._locked():
            entries = self._entries()
            used = 0
            for index, (session_id, owner, _) in enumerate(_ENTRY.iter_unpack(
                    self._map[_HEADER.size:_HEADER.size + entries * _ENTRY.size])):
                if session_id and owner == pid:
                    _ENTRY.pack_into(self._map, _HEADER.size + index * _ENTRY.size, 0, 0, bytes(16))
                elif session_id:
                    used += 1
            next_id = _HEADER.unpack_from(self._map)[0]
            _HEADER.pack_into(self._map, 0, next_id, used, entries)

    def _grow(self, entries: int) -> None:
        """Make room for ``entries`` entries (under the lock); the new ones are free."""
        os.ftruncate(self._fd, _HEADER.size + entries * _ENTRY.size)
        self._map = self._mapping()
        next_id, used, _ = _HEADER.unpack_from(self._map)
        _HEADER.pack_into(self._map, 0, next_id, used, entries)


class _Locked:
    """The thread lock, then the ``flock`` shared with the other processes."""

    __slots__ = ("slots",)

    def __init__(self, slots: Slots):
        self.slots = slots

    def __enter__(self):
        self.slots._lock.acquire()
        try:
            fcntl.flock(self.slots._fd, fcntl.LOCK_EX)
        except BaseException:
            self.slots._lock.release()
            raise

    def __exit__(self, *exc):
        try:
            fcntl.flock(self.slots._fd, fcntl.LOCK_UN)
        finally:
            self.slots._lock.release()
