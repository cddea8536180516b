"""Numbered schema migrations, run at start-up after an automatic backup.

The database records its version in ``PRAGMA user_version``. ``MIGRATIONS[n]`` brings a
version-n database to version n+1. A database that already holds data is copied with
SQLite's backup API into ``backups/`` beside it before any migration touches it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

log = logging.getLogger("kotakpos.store")


def _v1_core(db) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["domains"].create({"id": int, "name": str, "created": float}, pk="id", not_null={"name"})
    db.execute("CREATE UNIQUE INDEX domains_name ON domains(name COLLATE NOCASE)")
    db["users"].create(
        {"id": int, "address": str, "domain_id": int, "password": str, "quota": int,
         "created": float, "settings": str},
        pk="id", not_null={"address", "password"}, defaults={"quota": 0, "settings": "{}"},
        foreign_keys=[("domain_id", "domains", "id")],
    )
    db.execute("CREATE UNIQUE INDEX users_address ON users(address COLLATE NOCASE)")
    db["aliases"].create({"id": int, "alias": str, "target": str}, pk="id", not_null={"alias", "target"})
    db.execute("CREATE UNIQUE INDEX aliases_pair ON aliases(alias COLLATE NOCASE, target COLLATE NOCASE)")
    db["mailboxes"].create(
        {"id": int, "user_id": int, "name": str, "uidvalidity": int, "uidnext": int,
         "highestmodseq": int, "special_use": str},
        pk="id", not_null={"user_id", "name", "uidvalidity"},
        defaults={"uidnext": 1, "highestmodseq": 1},
        foreign_keys=[("user_id", "users", "id")],
    )
    db.execute("CREATE UNIQUE INDEX mailboxes_name ON mailboxes(user_id, name)")
    db["subscriptions"].create({"user_id": int, "name": str}, pk=("user_id", "name"),
                               foreign_keys=[("user_id", "users", "id")])
    # Message bytes, stored once per distinct content (SHA-256) and shared by reference.
    # AUTOINCREMENT: a blob id is never reused, so the search index (search.py) can trust it.
    db.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY AUTOINCREMENT, sha256 BLOB NOT NULL,"
               " size INTEGER NOT NULL, refcount INTEGER NOT NULL, data BLOB NOT NULL)")
    db.execute("CREATE UNIQUE INDEX blobs_sha256 ON blobs(sha256)")
    # What appliance.mime computed once at arrival; IMAP serves envelope and structure from here.
    db["parsed"].create({"blob_id": int, "envelope": bytes, "body": bytes, "bodystructure": bytes, "info": str},
                        pk="blob_id", foreign_keys=[("blob_id", "blobs", "id")])
    db["messages"].create(
        {"id": int, "mailbox_id": int, "uid": int, "blob_id": int, "flags": str,
         "internaldate": float, "size": int, "modseq": int, "recent": int},
        pk="id", not_null={"mailbox_id", "uid", "blob_id", "internaldate", "size", "modseq"},
        defaults={"flags": "", "recent": 1},
        foreign_keys=[("mailbox_id", "mailboxes", "id"), ("blob_id", "blobs", "id")],
    )
    db.execute("CREATE UNIQUE INDEX messages_uid ON messages(mailbox_id, uid)")
    db.execute("CREATE INDEX messages_blob ON messages(blob_id)")
    # Expunged UIDs with the modseq of their removal, for QRESYNC's VANISHED (RFC 7162).
    db["expunged"].create({"mailbox_id": int, "uid": int, "modseq": int}, pk=("mailbox_id", "uid"))
    db["queue"].create(
        {
            "id": int,
            "blob_id": int,        # the message bytes (shared with mailboxes)
            "sender": str,         # envelope sender, "" for bounces
            "recipient": str,      # one recipient per row
            "domain": str,         # recipient's domain, the unit of routing
            "dsn": str,            # JSON: NOTIFY, RET, ENVID, ORCPT from the SMTP transaction
            "created": float,      # when it was queued
            "attempts": int,       # delivery attempts so far
            "next_attempt": float, # when the queue runner may try again
            "last_error": str,     # the last remote reply or connection error
            "state": str,          # queued | held | delivering
        },
        pk="id", not_null={"blob_id", "sender", "recipient", "domain", "created", "next_attempt", "state"},
        defaults={"attempts": 0, "state": "queued", "dsn": "{}"},
        foreign_keys=[("blob_id", "blobs", "id")],
    )
    db.execute("CREATE INDEX queue_due ON queue(state, next_attempt)")
    db["quarantine"].create(
        {"id": int, "blob_id": int, "sender": str, "recipients": str, "reason": str, "created": float},
        pk="id", foreign_keys=[("blob_id", "blobs", "id")],
    )


def _v2_queue_warned(db: sqlite_utils.Database) -> None:
    # 1 once the sender was sent a delay DSN for this row (RFC 3464), so it is warned only once.
    db.execute("ALTER TABLE queue ADD COLUMN warned INTEGER NOT NULL DEFAULT 0")


MIGRATIONS = [_v1_core, _v2_queue_warned]
LATEST = len(MIGRATIONS)


def migrate(path: Path) -> int:
    """Bring the database at ``path`` to the latest version; return the version it had."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > LATEST:
            raise RuntimeError(f"{path} has schema version {version}, newer than this Kotakpos ({LATEST})")
        if version == LATEST:
            return version
        if version > 0:
            backup_path = _backup_before_migration(conn, path, version)
            log.info("backed up store to %s before migrating from version %d", backup_path, version)
        import sqlite_utils  # only when migrating: it is slow to import (it pulls in numpy when present)
        db = sqlite_utils.Database(conn)
        for number in range(version, LATEST):
            conn.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[number](db)
                conn.execute(f"PRAGMA user_version={number + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return version
    finally:
        conn.close()


def _backup_before_migration(conn: sqlite3.Connection, path: Path, version: int) -> Path:
    folder = path.parent / "backups"
    folder.mkdir(exist_ok=True)
    target = folder / f"{path.stem}-v{version}-{time.strftime('%Y%m%d-%H%M%S')}.sqlite"
    dest = sqlite3.connect(str(target))
    with dest:
        conn.backup(dest)
    dest.close()
    return target
