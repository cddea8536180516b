"""The full-text index for IMAP SEARCH, kept beside the store and off the delivery path.

Trigram indexing of a 100 KiB text costs about ten milliseconds: too much to do inside
the transaction whose commit acknowledges a message. The index is derived data (the
searchable text comes from each blob and its stored analysis), so it lives in its own
file, ``search.sqlite``, and an indexer thread brings it up to date right after each
commit — on the other core, while the writer goes on. Blob ids only ever grow
(AUTOINCREMENT), so everything up to ``indexed_upto`` is in the index; a search answers
from the index for those and reads the text of the few newer ones from the store, so
the answer is always exact. A lost, damaged or outdated index file is rebuilt from the store.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from appliance import mime
from appliance.store.db import Database
from appliance.store.errors import StorageFull

log = logging.getLogger("kotakpos.store")

BATCH = 200
# After a commit wakes it, the indexer lets this long pass before it indexes, so that a
# burst of deliveries goes into the index in a few large transactions: FTS5 writes a
# segment per transaction and merges the segments later, and 15 transactions of 15
# messages write about twice the bytes (and take more CPU) of one of 200. Searches stay
# exact meanwhile (see the module docstring); they read the newest texts from the store.
GATHER_SECONDS = 0.2
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
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._stop = threading.Event()
        self._caught_up = threading.Event()
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

    def notify(self) -> None:
        """New blobs were committed."""
        if not self.indexing:
            return
        self._caught_up.clear()
        self._wake.set()

    def forget(self, blob_ids: list[int]) -> None:
        """These blobs are gone; drop their rows (stale rows never match: ids are not reused)."""
        if not self.indexing:
            return  # the indexing process hears of them through the change journal
        with self._lock:
            self._forget.extend(blob_ids)
        self._wake.set()

    def wait_caught_up(self, timeout: float = 30.0) -> bool:
        """For tests and benchmarks that want to time the index itself (indexing process only)."""
        self.notify()
        return self._caught_up.wait(timeout)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(1.0)
            self._stop.wait(GATHER_SECONDS)
            self._wake.clear()
            try:
                while not self._stopping and self._step():  # a backlog waits for the next start
                    pass
            except StorageFull:  # one line, not a traceback every few seconds until space returns
                log.warning("search indexer waits: the disk is full; new mail becomes searchable once space returns")
                self._wake.wait(5.0)
            except Exception:  # the index can always be rebuilt; never take the server down
                log.exception("search indexer failed; retrying")
                self._wake.wait(5.0)

    def _step(self) -> bool:
        """Index one batch; True while there is more to do."""
        with self._lock:
            forget, self._forget = self._forget, []
        with self.store_db.reader() as conn:
            rows = conn.execute("SELECT p.blob_id, p.info, b.data FROM parsed p JOIN blobs b ON b.id = p.blob_id"
                                " WHERE p.blob_id > ? ORDER BY p.blob_id LIMIT ?",
                                (self._indexed_upto, BATCH)).fetchall()
        if not rows and not forget:
            self._caught_up.set()
            return False
        items = [(r["blob_id"], *searchable(r["info"], r["data"])) for r in rows]
        upto = rows[-1]["blob_id"] if rows else self._indexed_upto

        def job(tx):
            tx.executemany("DELETE FROM search WHERE rowid = ?", [(b,) for b in forget])
            tx.executemany("INSERT OR REPLACE INTO search(rowid, headers, body) VALUES (?,?,?)", items)
            tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('indexed_upto', ?)", (upto,))

        self.db.write(job)
        self._indexed_upto = upto
        return True

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
            self._stopping = True
            self._stop.set()
            self._wake.set()
            self._thread.join(5)
        self.db.close()
