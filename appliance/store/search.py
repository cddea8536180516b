"""The full-text index for IMAP SEARCH, kept beside the store and built while the server rests.

Trigram indexing of a 100 KiB text costs about three milliseconds of CPU, as much as all
the rest of accepting that message: too much to do inside the transaction whose commit
acknowledges it, and, during a burst of deliveries, CPU that the deliveries want on the
same cores. The index is derived data (the searchable text comes from each blob and its
stored analysis), so it lives in its own file, ``search.sqlite``, and one indexer thread
(in the first worker) builds it lazily, as Dovecot does. Once a second it looks at the
backlog, the blobs newer than ``indexed_upto``, and indexes them when

- no new blob came since its previous look, a second ago: deliveries have paused;
- or the backlog passed a cap (``MAX_BACKLOG_BLOBS``, ``MAX_BACKLOG_BYTES``, or its oldest
  part waited ``MAX_BACKLOG_SECONDS``), so that it stays bounded under a stream that never
  pauses;
- or someone waits for it (``wait_caught_up``: tests and benchmarks).

Indexing goes one batch at a time, and after each it looks again: when deliveries resume
within a backlog it started at a pause, it goes back to waiting; one it started at a cap it
indexes to the end. Blobs that went away (``forget``) leave the index with the next batch.

Blob ids only ever grow (AUTOINCREMENT), so everything up to ``indexed_upto`` is in the
index; a search answers from the index for those and reads the text of the newer ones from
the store, so the answer is always exact. Reading a text costs about a twentieth of the
CPU of indexing it (0.15-0.2 ms for 100 KiB, against 3.2-3.4 ms), which is why a search does
not wake the indexer (Dovecot indexes at search time): waiting for it would make that search
slower, and the caps keep what a search reads from the store to a few tenths of a second at
most (see ``MAX_BACKLOG_BYTES``). A restart indexes what is missing the same way, and a
lost, damaged or outdated index file is rebuilt from the store.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from appliance import mime
from appliance.store.db import Database
from appliance.store.errors import StorageFull

log = logging.getLogger("kotakpos.store")

BATCH = 200
# How often the indexer looks at the backlog, and so how long deliveries must pause before
# it indexes: between one and two of these. Long enough that a burst of mail (8 clients
# that each send the next message on their 250 leave gaps of milliseconds) goes by
# unindexed, short enough that the index is complete a moment after the burst.
LOOK_SECONDS = 1.0
# The caps on the backlog under a stream that never pauses for a second. A search reads
# every unindexed text of its mailbox from the store: on the 2-core test box 0.15-0.2 ms of
# CPU for each 100 KiB message and 0.02-0.03 ms for each 4 KiB one. At either cap that is
# 0.1-0.16 s of CPU more for the search (0.13-0.36 s on the clock of the shared box; see
# bench/README.md, "The search index built after the burst"), which a user hardly notices.
# The delay bounds how much work piles up for a pause, and how far behind the index file
# is, under a slow stream: the index catches up within a minute, however the mail arrives.
MAX_BACKLOG_BYTES = 64 * 1024 * 1024
MAX_BACKLOG_BLOBS = 5000
MAX_BACKLOG_SECONDS = 60.0
# FTS5 merges segments once this many of one level exist (its default is 4): fewer, larger
# merges, less rewriting of the index under a steady stream of mail.
AUTOMERGE = 16
COLUMNS = {"text": ("headers", "body"), "body": ("body",), "headers": ("headers",)}
# The index's layout; an index file of another format is emptied and rebuilt at start.
# Format 2 holds lower-cased text without token positions (detail=none): 2.5 times
# smaller than format 1's phrase index. A substring query is a GLOB on one column, which
# FTS5 narrows with the trigrams of the needle's literal runs and then checks exactly.
FORMAT = 2


def _index_schema(tx) -> None:
    tx.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER)")
    row = tx.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if row is None or row[0] != FORMAT:
        if tx.execute("SELECT 1 FROM sqlite_schema WHERE name = 'search'").fetchone():
            log.warning("search index is of an older format; rebuilding it (searches stay exact meanwhile)")
        tx.execute("DROP TABLE IF EXISTS search")
        tx.execute("DELETE FROM meta")
        tx.execute("INSERT INTO meta(key, value) VALUES ('format', ?)", (FORMAT,))
    tx.execute("CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(headers, body, tokenize='trigram', detail=none)")
    tx.execute("INSERT INTO search(search, rank) VALUES ('automerge', ?)", (AUTOMERGE,))


def searchable(info_json: str, raw: bytes) -> tuple[str, str]:
    """The (headers, body) texts the index holds for a blob, lower-cased: a search is a
    case-insensitive substring match (RFC 3501 §6.4.4), made case-sensitive on both sides."""
    info = mime.MessageInfo.from_json(info_json)
    return info.header_search.lower(), mime.body_text(raw, info).lower()


def matches(needle: str, info_json: str, raw: bytes, where: str) -> bool:
    """What the index answers, computed from the message itself."""
    headers, body = searchable(info_json, raw)
    haystacks = {"headers": headers, "body": body}
    folded = needle.lower()
    return any(folded in haystacks[c] for c in COLUMNS[where])


def _glob_literal(text: str) -> str:
    """``text`` as a GLOB pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


class SearchIndex:
    def __init__(self, store_db: Database, index_path: Path, indexing: bool = True):
        """``indexing``: this process runs the indexer thread. The other processes of a server
        with several workers only search, reading how far the index goes from its file."""
        self.store_db = store_db
        self.indexing = indexing
        self.db = Database(index_path, publish=lambda events: None, synchronous="NORMAL")
        self.db.write(_index_schema)
        with self.db.reader() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'indexed_upto'").fetchone()
        self._indexed_upto = row[0] if row else 0
        if not indexing:
            return
        with store_db.reader() as conn:
            seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'blobs'").fetchone()
        if self._indexed_upto > (seq[0] if seq else 0):
            # The store is older than its index (a restored backup): start the index afresh.
            log.warning("search index is ahead of the store; rebuilding it")
            self.db.write(lambda tx: (tx.execute("DELETE FROM search"),
                                      tx.execute("DELETE FROM meta WHERE key = 'indexed_upto'")))
            self._indexed_upto = 0
        self._forget: list[int] = []
        self._lock = threading.Lock()  # for _forget, _asked and _answered
        self._wake = threading.Event()  # set by wait_caught_up and close
        self._stop = threading.Event()
        self._asked = 0  # wait_caught_up calls so far
        self._answered = 0  # those whose commits are all in the index
        self._answers = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="search-indexer", daemon=True)
        self._thread.start()

    @property
    def indexed_upto(self) -> int:
        """Every blob up to this id is in the index."""
        if self.indexing:
            return self._indexed_upto
        with self.db.reader() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'indexed_upto'").fetchone()
        return row[0] if row else 0

    def forget(self, blob_ids: list[int]) -> None:
        """These blobs are gone; their rows leave with the next batch (stale rows never
        match meanwhile: a search looks only at blobs that have messages, and ids are not reused)."""
        if not self.indexing:
            return  # the indexing process hears of them through the change journal
        with self._lock:
            self._forget.extend(blob_ids)

    def wait_caught_up(self, timeout: float = 30.0) -> bool:
        """Index everything committed so far now, without waiting for a pause, and return once
        it is in the index (True) or after ``timeout`` (False). For tests and benchmarks that
        want a complete index (indexing process only)."""
        with self._answers:
            self._asked += 1
            ticket = self._asked
        self._wake.set()
        with self._answers:
            return self._answers.wait_for(lambda: self._answered >= ticket, timeout)

    def _run(self) -> None:
        seen = None  # the newest blob id at the previous look
        since = None  # when a look first saw this backlog (None: there is none)
        hurry = False  # this backlog reached a cap: index it to the end
        while not self._stop.is_set():
            try:
                with self._lock:
                    asked, forget = self._asked, len(self._forget)
                newest, count, size = self._backlog()
                paused, seen = newest == seen, newest
                if count or forget:
                    since = since or time.monotonic()
                    hurry = hurry or (count + forget >= MAX_BACKLOG_BLOBS or size >= MAX_BACKLOG_BYTES
                                      or time.monotonic() - since >= MAX_BACKLOG_SECONDS)
                    if hurry or paused or asked > self._answered:
                        self._step()
                        continue  # and look again at once: deliveries may have resumed meanwhile
                else:
                    since, hurry = None, False
                    with self._answers:
                        self._answered = asked
                        self._answers.notify_all()
                self._wake.wait(LOOK_SECONDS)
                self._wake.clear()
            except StorageFull:  # one line, not a traceback every few seconds until space returns
                log.warning("search indexer waits: the disk is full; new mail becomes searchable once space returns")
                self._stop.wait(5.0)
            except Exception:  # the index can always be rebuilt; never take the server down
                log.exception("search indexer failed; retrying")
                self._stop.wait(5.0)

    def _backlog(self) -> tuple[int, int, int]:
        """(the newest blob id ever given, how many blobs and bytes the index lacks), counted
        up to the cap: a store whose index is rebuilt lacks them all, and is looked at after each batch."""
        with self.store_db.reader() as conn:
            row = conn.execute("SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'blobs'), count(*), total(size)"
                               " FROM (SELECT b.size FROM parsed p JOIN blobs b ON b.id = p.blob_id"
                               "       WHERE p.blob_id > ? ORDER BY p.blob_id LIMIT ?)",
                               (self._indexed_upto, MAX_BACKLOG_BLOBS)).fetchone()
        return row[0] or 0, row[1], int(row[2])

    def _step(self) -> None:
        """Index one batch, and drop the rows of blobs that went away."""
        with self._lock:
            forget, self._forget = self._forget, []
        with self.store_db.reader() as conn:
            rows = conn.execute("SELECT p.blob_id, p.info, b.data FROM parsed p JOIN blobs b ON b.id = p.blob_id"
                                " WHERE p.blob_id > ? ORDER BY p.blob_id LIMIT ?",
                                (self._indexed_upto, BATCH)).fetchall()
        items = [(r["blob_id"], *searchable(r["info"], r["data"])) for r in rows]
        upto = rows[-1]["blob_id"] if rows else self._indexed_upto

        def job(tx):
            tx.executemany("DELETE FROM search WHERE rowid = ?", [(b,) for b in forget])
            tx.executemany("INSERT OR REPLACE INTO search(rowid, headers, body) VALUES (?,?,?)", items)
            tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('indexed_upto', ?)", (upto,))

        try:
            self.db.write(job)
        except Exception:
            with self._lock:  # not lost: the next batch drops them
                self._forget[:0] = forget
            raise
        self._indexed_upto = upto

    def matching_blobs(self, needle: str, where: str) -> set[int]:
        """Ids of indexed blobs whose text contains ``needle`` (case-insensitive substring)."""
        pattern = "*" + _glob_literal(needle.lower()) + "*"
        found = set()
        with self.db.reader() as conn:
            # One query per column: FTS5 uses its index for a GLOB on one column, not for an OR.
            # A needle without a literal run of three characters makes it scan the text.
            for column in COLUMNS[where]:
                found.update(r[0] for r in conn.execute(f"SELECT rowid FROM search WHERE {column} GLOB ?", (pattern,)))
        return found

    def close(self) -> None:
        if self.indexing:
            self._stop.set()
            self._wake.set()
            self._thread.join(5)
        self.db.close()
