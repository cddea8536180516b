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

from appliance.mime import sortkeys
from appliance.store.db import create_private

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


def _v2_queue_warned(db) -> None:
    # 1 once the sender was sent a delay DSN for this row (RFC 3464), so it is warned only once.
    db.execute("ALTER TABLE queue ADD COLUMN warned INTEGER NOT NULL DEFAULT 0")


def _v3_filters(db) -> None:
    """Tables of the MDA: rules, Bayes counts, vacation memory, receipt ledger."""
    # Per-user Sieve script (RFC 5228 subset); one per user, kept as text.
    db.execute("CREATE TABLE sieve_scripts (user_id INTEGER PRIMARY KEY, script TEXT NOT NULL, updated REAL NOT NULL)")
    # Bayes token counts. user_id 0 is the shared base every user's classifier starts from.
    db.execute("CREATE TABLE bayes_tokens (user_id INTEGER NOT NULL, token TEXT NOT NULL,"
               " spam INTEGER NOT NULL DEFAULT 0, ham INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (user_id, token))"
               " WITHOUT ROWID")
    # How many messages each classifier learned from, per class.
    db.execute("CREATE TABLE bayes_totals (user_id INTEGER PRIMARY KEY, spam INTEGER NOT NULL DEFAULT 0,"
               " ham INTEGER NOT NULL DEFAULT 0)")
    # What a user's classifier learned a blob as (1 spam, 0 ham), so a move back untrains it.
    db.execute("CREATE TABLE bayes_trained (user_id INTEGER NOT NULL, blob_sha256 BLOB NOT NULL,"
               " spam INTEGER NOT NULL, PRIMARY KEY (user_id, blob_sha256)) WITHOUT ROWID")
    # Sieve vacation (RFC 5230 §4.2): when a user last auto-replied to a sender.
    db.execute("CREATE TABLE vacation_sent (user_id INTEGER NOT NULL, sender TEXT NOT NULL, handle TEXT NOT NULL,"
               " sent REAL NOT NULL, PRIMARY KEY (user_id, sender, handle)) WITHOUT ROWID")
    # Receipt ledger, outgoing: one row per recipient of a message a local user sent that
    # asked for a delivery (DSN NOTIFY) or read (Disposition-Notification-To) receipt.
    db.execute("CREATE TABLE receipts_sent (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,"
               " message_id TEXT NOT NULL,"   # the Message-ID header, matched by MDN Original-Message-ID
               " envid TEXT NOT NULL,"        # DSN ENVID (or our queue id), matched by Original-Envelope-Id
               " recipient TEXT NOT NULL,"    # the envelope recipient, matched by Final/Original-Recipient
               " subject TEXT NOT NULL, sent REAL NOT NULL,"
               " delivery TEXT NOT NULL,"     # requested | delivered | relayed | delayed | failed | '' (not asked)
               " display TEXT NOT NULL,"      # requested | displayed | deleted | ... | '' (not asked)
               " updated REAL NOT NULL, detail TEXT NOT NULL DEFAULT '')")
    db.execute("CREATE INDEX receipts_sent_msgid ON receipts_sent(message_id)")
    db.execute("CREATE INDEX receipts_sent_envid ON receipts_sent(envid)")
    # Receipt ledger, incoming: a delivered message that asked for a read receipt (MDN).
    db.execute("CREATE TABLE receipts_requested (user_id INTEGER NOT NULL, message_id TEXT NOT NULL,"
               " blob_sha256 BLOB NOT NULL,"  # finds the message again whichever folder it is in
               " notify_to TEXT NOT NULL,"    # the Disposition-Notification-To address
               " return_path TEXT NOT NULL,"  # the envelope sender; no MDN without one (RFC 8098 §2.1)
               " subject TEXT NOT NULL, received REAL NOT NULL,"
               " state TEXT NOT NULL,"        # pending | sent | refused (spam, no return path, policy)
               " updated REAL NOT NULL, PRIMARY KEY (user_id, blob_sha256)) WITHOUT ROWID")


def _v4_imap_imports(db) -> None:
    """Progress of ``kotakpos import imap``, so a second run copies only what is new."""
    db.execute("CREATE TABLE imap_imports (user_id INTEGER NOT NULL,"
               " source TEXT NOT NULL,"       # "user@host:port" of the remote account
               " folder TEXT NOT NULL,"       # the remote folder's name as the remote server spells it
               " uidvalidity INTEGER NOT NULL, last_uid INTEGER NOT NULL,"  # copied up to this UID
               " PRIMARY KEY (user_id, source, folder)) WITHOUT ROWID")


def _v5_receipts_by_message_id(db) -> None:
    """Read-receipt requests are found by the user and the message's Message-ID (the same
    in whichever folder the message is, and in every copy), not by the stored bytes."""
    db.execute("DROP TABLE receipts_requested")
    db.execute("CREATE TABLE receipts_requested (user_id INTEGER NOT NULL,"
               " message_id TEXT NOT NULL,"   # the request's Message-ID
               " notify_to TEXT NOT NULL,"    # the Disposition-Notification-To address
               " return_path TEXT NOT NULL,"  # the envelope sender; no MDN without one (RFC 8098 §2.1)
               " subject TEXT NOT NULL, received REAL NOT NULL,"
               " state TEXT NOT NULL,"        # pending | sent | refused (spam, no return path, policy)
               " updated REAL NOT NULL, PRIMARY KEY (user_id, message_id)) WITHOUT ROWID")


def _v6_greylist(db) -> None:
    """The MDA's greylisting memory (RFC 6647), one row per (client network, sender, recipient)."""
    db.execute("CREATE TABLE greylist (network TEXT NOT NULL,"  # the client's /24 (IPv4) or /64 (IPv6)
               " sender TEXT NOT NULL, recipient TEXT NOT NULL,"  # lower-cased envelope addresses
               " first_seen REAL NOT NULL,"   # the first, refused attempt
               " passed REAL,"                # when a retry was let through (NULL: not yet)
               " last_seen REAL NOT NULL, PRIMARY KEY (network, sender, recipient)) WITHOUT ROWID")


def _v7_secrets(db) -> None:
    # DKIM keys and the SRS secret, so backups carry them (store/secrets.py)
    db.execute("CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)")



def _v8_daily_counts(db) -> None:
    # Counters per day (store/counters.py), so "today" survives a restart
    db.execute("CREATE TABLE daily_counts (day TEXT NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL,"
               " PRIMARY KEY (day, name)) WITHOUT ROWID")


def _v9_unterminated_blobs(db) -> None:
    """The blobs whose last line lacks its CRLF, which POP3 adds (RFC 1939 §3; store/pop3.py).

    POP3's login snapshot needs each message's size on the wire; without this table it
    read the last two bytes of every blob of the maildrop. Kept by triggers, so every
    way a blob comes and goes keeps it right; most messages end in CRLF and add no row.
    """
    db.execute("CREATE TABLE blobs_unterminated (blob_id INTEGER PRIMARY KEY)")  # blobs.id
    db.execute("INSERT INTO blobs_unterminated SELECT id FROM blobs"
               " WHERE size > 0 AND substr(data, size - 1, 2) <> x'0d0a'")
    db.execute("CREATE TRIGGER blobs_unterminated_insert AFTER INSERT ON blobs"
               " WHEN NEW.size > 0 AND substr(NEW.data, NEW.size - 1, 2) <> x'0d0a'"
               " BEGIN INSERT INTO blobs_unterminated VALUES (NEW.id); END")
    db.execute("CREATE TRIGGER blobs_unterminated_delete AFTER DELETE ON blobs"
               " BEGIN DELETE FROM blobs_unterminated WHERE blob_id = OLD.id; END")


def _v10_no_stored_body_text(db) -> None:
    """Analyses no longer carry the body text (mime.info, JSON version 2): it doubled the
    store's size, and the search indexer now reads it from the blob. Freed pages are reused."""
    db.execute("UPDATE parsed SET info = json_set(json_remove(info, '$.search_text'), '$.v', 2)"
               " WHERE json_extract(info, '$.v') = 1")


def _v11_change_journal(db) -> None:
    """What each commit changed, for the other processes on the file (store/journal.py)."""
    db.execute("CREATE TABLE changes (id INTEGER PRIMARY KEY,"  # one per commit with events, never reused
               " created REAL NOT NULL,"  # when it was written (pruned after a minute)
               " events TEXT NOT NULL)")  # JSON: [[event type, fields...], ...]


def _v12_queue_ids_never_reused(db) -> None:
    """Queue ids are AUTOINCREMENT: an id the log or an admin once saw never names another
    entry later (a plain INTEGER PRIMARY KEY hands the highest freed id out again)."""
    sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'queue'").fetchone()[0]
    if "AUTOINCREMENT" in sql:
        return  # a store whose version number was set back by hand (tests do) has it already
    new = sql.replace('"queue"', '"queue_new"', 1).replace('"id" INTEGER PRIMARY KEY', '"id" INTEGER PRIMARY KEY AUTOINCREMENT', 1)
    db.execute(new)
    db.execute("INSERT INTO queue_new SELECT * FROM queue")
    db.execute("DROP TABLE queue")
    db.execute("ALTER TABLE queue_new RENAME TO queue")
    db.execute("CREATE INDEX queue_due ON queue(state, next_attempt)")


def _v13_sort_keys(db) -> None:
    """IMAP SORT and THREAD keys of each blob (mime.sortkeys), so that sorting a big mailbox
    reads short columns, never headers. Kept beside ``parsed``: written and dropped with it.
    Built afresh from the blobs, whatever a half-migrated copy held."""
    db.execute("DROP TABLE IF EXISTS sort_keys")
    db.execute("CREATE TABLE sort_keys (blob_id INTEGER PRIMARY KEY,"  # blobs.id
               " sent REAL,"                   # Date header, UTC timestamp; NULL: use INTERNALDATE
               " subject TEXT NOT NULL,"       # base subject (RFC 5256 §2.1), as a casemap key
               " reply INTEGER NOT NULL,"      # 1: the subject had a Re:/Fwd: marker
               " from_addr TEXT NOT NULL, to_addr TEXT NOT NULL, cc_addr TEXT NOT NULL,"  # first addr-mailbox
               " display_from TEXT NOT NULL, display_to TEXT NOT NULL,"  # RFC 5957 display keys
               " message_id TEXT NOT NULL,"    # without angle brackets; "" when absent
               " refs TEXT NOT NULL)")          # the parent chain (References), space-separated
    cursor = db.conn.execute("SELECT id, substr(data, 1, ?) FROM blobs", (SORT_KEY_HEADER_LIMIT,))
    while True:
        batch = cursor.fetchmany(500)
        if not batch:
            break
        db.conn.executemany(f"INSERT INTO sort_keys VALUES ({SORT_KEY_MARKS})",
                            [sort_key_row(blob_id, sortkeys.sort_keys(data)) for blob_id, data in batch])


SORT_KEY_MARKS = ",".join("?" * 11)
SORT_KEY_HEADER_LIMIT = 256 * 1024  # a header longer than this is read only this far


def sort_key_row(blob_id: int, keys) -> tuple:
    """The sort_keys row of a blob's ``mime.sortkeys.SortKeys``."""
    return (blob_id, keys.sent, keys.subject, int(keys.reply), keys.from_, keys.to, keys.cc,
            keys.display_from, keys.display_to, keys.message_id, " ".join(keys.references))


def _v14_sieve_scripts(db) -> None:
    """Several named Sieve scripts per user, one active (RFC 5804 ManageSieve), and the
    account-rules slot run before the active one. Each existing script stays active under
    the name "rules" (store.filters.DEFAULT_SCRIPT)."""
    db.execute("CREATE TABLE sieve_scripts_v14 (user_id INTEGER NOT NULL, name TEXT NOT NULL, script TEXT NOT NULL,"
               " active INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL, PRIMARY KEY (user_id, name))")
    db.execute("INSERT INTO sieve_scripts_v14 SELECT user_id, 'rules', script, 1, updated FROM sieve_scripts")
    db.execute("DROP TABLE sieve_scripts")
    db.execute("ALTER TABLE sieve_scripts_v14 RENAME TO sieve_scripts")
    # The store's promise of one active script per user, kept by SQLite itself.
    db.execute("CREATE UNIQUE INDEX sieve_scripts_active ON sieve_scripts(user_id) WHERE active")
    # Written by the account page (out of office, forwarding, simple filters); Pigeonhole's sieve_before.
    db.execute("CREATE TABLE sieve_account_rules (user_id INTEGER PRIMARY KEY, script TEXT NOT NULL,"
               " updated REAL NOT NULL)")


def _v15_queue_owner(db) -> None:
    """Who is delivering a row, so a restarting worker never takes a live worker's delivery."""
    if "owner" in db["queue"].columns_dict:
        return  # a store whose version number was set back by hand (tests do) has it already
    # "pid:start time" of the process that claimed a 'delivering' row (store/queue.py); NULL otherwise
    db.execute("ALTER TABLE queue ADD COLUMN owner TEXT")


def _v16_credentials(db) -> None:
    """App passwords and two-step sign-in (store/credentials.py). IF NOT EXISTS: a store whose
    version number was set back by hand (tests do) has them already."""
    db.execute("CREATE TABLE IF NOT EXISTS app_passwords ("
               " id INTEGER PRIMARY KEY AUTOINCREMENT,"  # never reused: a revoked id names nothing later
               " user_id INTEGER NOT NULL REFERENCES users(id),"
               " name TEXT NOT NULL,"       # the device, as the user named it
               " digest TEXT NOT NULL,"     # SHA-256 of the app password (hex)
               " created REAL NOT NULL,"
               " last_used REAL,"           # last login with it (None: never)
               " last_ip TEXT)")            # from where
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS app_passwords_digest ON app_passwords(user_id, digest)")
    db.execute("CREATE TABLE IF NOT EXISTS totp (user_id INTEGER PRIMARY KEY REFERENCES users(id),"
               " secret TEXT NOT NULL,"     # base32 (RFC 6238 shared secret)
               " enabled REAL NOT NULL)")   # when it was confirmed
    db.execute("CREATE TABLE IF NOT EXISTS recovery_codes (user_id INTEGER NOT NULL REFERENCES users(id),"
               " digest TEXT NOT NULL,"     # SHA-256 of a one-use code (hex); deleted when used
               " PRIMARY KEY (user_id, digest)) WITHOUT ROWID")


def _v17_account_rules_model(db) -> None:
    """The account page's out of office, forwarding and filters as data (JSON of
    mda.account_rules.AccountRules), kept beside the script generated from it, so the page
    shows what was saved even while everything is off. Checked first: a store whose version
    number was set back by hand (tests do) has it already."""
    if "model" not in db["sieve_account_rules"].columns_dict:
        db.execute("ALTER TABLE sieve_account_rules ADD COLUMN model TEXT NOT NULL DEFAULT ''")


def _v18_expunged_kept(db) -> None:
    """Messages expunged while other IMAP sessions had their mailbox selected, kept with their
    blobs until each of those sessions has been told (RFC 2180 §4.1: a FETCH of a message a
    session still believes in answers with its data). Released by ``release_expunged``."""
    db.execute("CREATE TABLE IF NOT EXISTS expunged_kept (mailbox_id INTEGER NOT NULL, uid INTEGER NOT NULL,"
               " blob_id INTEGER NOT NULL,"    # still counted in blobs.refcount
               " flags TEXT NOT NULL, size INTEGER NOT NULL, internaldate REAL NOT NULL,"
               " modseq INTEGER NOT NULL,"     # the message's last modseq, as it was
               " expunged INTEGER NOT NULL,"   # the mailbox modseq of the expunge
               " PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID")


MIGRATIONS = [_v1_core, _v2_queue_warned, _v3_filters, _v4_imap_imports, _v5_receipts_by_message_id,
              _v6_greylist, _v7_secrets, _v8_daily_counts, _v9_unterminated_blobs, _v10_no_stored_body_text,
              _v11_change_journal, _v12_queue_ids_never_reused,
              _v13_sort_keys, _v14_sieve_scripts, _v15_queue_owner,
              _v16_credentials, _v17_account_rules_model, _v18_expunged_kept]
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
    target = path.parent / "backups" / f"{path.stem}-v{version}-{time.strftime('%Y%m%d-%H%M%S')}.sqlite"
    dest = sqlite3.connect(str(create_private(target)))
    with dest:
        conn.backup(dest)
    dest.close()
    return target
