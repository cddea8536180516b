"""What the MDA filters keep: quarantine, Bayes counts, Sieve scripts, vacation memory, receipts.

``deliver_filtered`` is the filtered form of ``deliver``: the pipeline may give each
recipient a different copy (its own headers, folder and flags) and may add notices
(receipts, vacation replies, redirects) and a quarantine row; all of it is one
transaction, so the SMTP 250 still means every part is on disk.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from appliance.store.errors import AlreadyExists, NotFound, QuotaExceeded, ScriptActive
from appliance.store.events import AccountsChanged, QuarantineChanged, QueueChanged
from appliance.store.messages import DeliveryResult, parse_flags, prepare
from appliance.store.models import MessageRow, Notice

SHARED = 0  # the user_id of the shared Bayes base
# The name a script gets when it is stored without one (the admin's `kotakpos rules set`
# with none active, and the migration from one script per user).
DEFAULT_SCRIPT = "rules"


@dataclass(frozen=True)
class Quarantined:
    """One message held back by a filter (a row of ``quarantine``)."""

    id: int
    sender: str
    recipients: tuple[str, ...]   # addresses of the local users it was meant for
    reason: str
    created: float
    size: int
    blob_id: int


@dataclass(frozen=True)
class SieveScript:
    """One of a user's Sieve scripts, as LISTSCRIPTS shows it (RFC 5804 §2.7)."""

    name: str
    active: bool     # the one the MDA runs (after the account rules); at most one per user
    size: int        # octets of its UTF-8 text
    updated: float   # when it was last stored or renamed


@dataclass(frozen=True)
class SentReceipt:
    """A ledger row: one recipient of a message a local user sent that asked for receipts."""

    id: int
    user_id: int
    message_id: str
    envid: str
    recipient: str
    subject: str
    sent: float
    delivery: str   # requested | delivered | relayed | delayed | failed | "" (not asked)
    display: str    # requested | displayed | deleted | dispatched | processed | denied | failed | ""
    updated: float
    detail: str


@dataclass(frozen=True)
class RequestedReceipt:
    """An incoming message that asked its reader for a read receipt (MDN)."""

    user_id: int
    message_id: str
    notify_to: str
    return_path: str
    subject: str
    received: float
    state: str      # pending | sent | refused


class FiltersMixin:
    # -- delivery ------------------------------------------------------------------------

    def deliver_filtered(self, copies: Sequence[Notice], quarantine: tuple[bytes, str, Sequence[str], str] | None = None,
                         requested: Sequence[RequestedReceipt] = (), sent: Sequence[dict] = (),
                         known=None) -> DeliveryResult:
        """Write every copy (local mailboxes and queue rows), the quarantine row (raw,
        sender, the users' addresses, reason) and receipt-ledger rows in ONE transaction.

        Returns once committed and fsynced, like ``deliver``; ``known`` as in ``prepare``.
        """
        prepared = [(prepare(c.raw, known), c) for c in copies]
        held = (prepare(quarantine[0], known), quarantine) if quarantine else None
        when = time.time()

        def job(tx):
            uids, queue_ids = {}, []
            for p, copy in prepared:
                copy_uids, copy_queue_ids = self._write_copy(tx, p, copy.deliveries, copy.queue, when)
                uids.update(copy_uids)
                queue_ids += copy_queue_ids
            if held:
                p, (_, sender, addresses, reason) = held
                blob_id = self._put_blob(tx, p, 1)
                held_id = tx.execute("INSERT INTO quarantine(blob_id, sender, recipients, reason, created)"
                                     " VALUES (?,?,?,?,?) RETURNING id",
                                     (blob_id, sender, json.dumps(list(addresses)), reason, when)).fetchone()[0]
                tx.emit(QuarantineChanged("held", (held_id,)))
            for r in requested:
                tx.execute("INSERT OR IGNORE INTO receipts_requested VALUES (?,?,?,?,?,?,?,?)",
                           (r.user_id, r.message_id, r.notify_to, r.return_path, r.subject, when, r.state, when))
            for row in sent:
                tx.execute("INSERT INTO receipts_sent(user_id, message_id, envid, recipient, subject, sent, delivery,"
                           " display, updated) VALUES (?,?,?,?,?,?,?,?,?)",
                           (row["user_id"], row["message_id"], row["envid"], row["recipient"], row["subject"],
                            when, row["delivery"], row["display"], when))
            if queue_ids:
                tx.emit(QueueChanged("queued", tuple(queue_ids)))
            return DeliveryResult(uids, tuple(queue_ids))

        return self.db.write(job)

    # -- quarantine ----------------------------------------------------------------------

    def list_quarantine(self, limit: int = 1000) -> list[Quarantined]:
        with self.db.reader() as conn:
            rows = conn.execute("SELECT q.*, b.size FROM quarantine q JOIN blobs b ON b.id = q.blob_id"
                                " ORDER BY q.id LIMIT ?", (limit,)).fetchall()
        return [_quarantined(r) for r in rows]

    def get_quarantined(self, quarantine_id: int) -> Quarantined:
        with self.db.reader() as conn:
            row = conn.execute("SELECT q.*, b.size FROM quarantine q JOIN blobs b ON b.id = q.blob_id"
                               " WHERE q.id = ?", (quarantine_id,)).fetchone()
        if row is None:
            raise NotFound(f"no quarantined message {quarantine_id}")
        return _quarantined(row)

    def release_quarantined(self, quarantine_id: int, copies: Sequence[Notice]) -> DeliveryResult:
        """Remove a quarantine row and write ``copies`` (its deliveries) in one transaction.
        Raises NotFound when the row is gone (released or deleted by someone else)."""
        prepared = [(prepare(c.raw), c) for c in copies]
        when = time.time()

        def job(tx):
            row = tx.execute("DELETE FROM quarantine WHERE id = ? RETURNING blob_id", (quarantine_id,)).fetchone()
            if row is None:
                raise NotFound(f"no quarantined message {quarantine_id}")
            uids, queue_ids = {}, []
            for p, copy in prepared:
                copy_uids, copy_queue_ids = self._write_copy(tx, p, copy.deliveries, copy.queue, when)
                uids.update(copy_uids)
                queue_ids += copy_queue_ids
            self._release_blobs(tx, [row["blob_id"]])
            tx.emit(QuarantineChanged("released", (quarantine_id,)))
            if queue_ids:
                tx.emit(QueueChanged("queued", tuple(queue_ids)))
            return DeliveryResult(uids, tuple(queue_ids))

        return self.db.write(job)

    def delete_quarantined(self, quarantine_id: int) -> None:
        def job(tx):
            row = tx.execute("DELETE FROM quarantine WHERE id = ? RETURNING blob_id", (quarantine_id,)).fetchone()
            if row is None:
                raise NotFound(f"no quarantined message {quarantine_id}")
            self._release_blobs(tx, [row["blob_id"]])
            tx.emit(QuarantineChanged("deleted", (quarantine_id,)))

        self.db.write(job)

    def blob_sha256(self, blob_id: int) -> bytes:
        with self.db.reader() as conn:
            row = conn.execute("SELECT sha256 FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        if row is None:
            raise NotFound("message is gone")
        return row["sha256"]

    # -- Bayes -----------------------------------------------------------------------------

    def bayes_counts(self, user_id: int, tokens: Iterable[str]) -> tuple[dict[str, tuple[int, int]], tuple[int, int]]:
        """(token -> (spam, ham) of the user plus the shared base, (spam, ham) messages learned)."""
        token_list = sorted(set(tokens))
        counts: dict[str, tuple[int, int]] = {}
        with self.db.reader() as conn:
            totals = conn.execute("SELECT coalesce(sum(spam), 0), coalesce(sum(ham), 0) FROM bayes_totals"
                                  " WHERE user_id IN (?, ?)", (SHARED, user_id)).fetchone()
            if totals[0] + totals[1] == 0:
                return counts, (0, 0)  # nothing learned yet: no need to look tokens up
            for start in range(0, len(token_list), 400):
                chunk = token_list[start:start + 400]
                for r in conn.execute(f"SELECT token, sum(spam), sum(ham) FROM bayes_tokens WHERE user_id IN (?, ?)"
                                      f" AND token IN ({','.join('?' * len(chunk))}) GROUP BY token",
                                      (SHARED, user_id, *chunk)):
                    counts[r[0]] = (r[1], r[2])
        return counts, (totals[0], totals[1])

    def bayes_counts_many(self, user_ids: Iterable[int], tokens: Callable[[], Iterable[str]]
                          ) -> dict[int, tuple[dict[str, tuple[int, int]], tuple[int, int]]]:
        """``bayes_counts`` for several classifiers at once (SHARED alone, or a user's plus the
        shared base), in one read: one query for the totals and one for every token of every
        classifier. ``tokens`` is called only when any of them has learned anything, so an
        untrained office never tokenises its mail."""
        wanted = list(dict.fromkeys(user_ids))
        ids = sorted(set(wanted) | {SHARED})
        marks = ",".join("?" * len(ids))
        with self.db.reader() as conn:
            learned = {r[0]: (r[1], r[2]) for r in conn.execute(
                f"SELECT user_id, spam, ham FROM bayes_totals WHERE user_id IN ({marks})", ids)}
            shared = learned.get(SHARED, (0, 0))
            totals = {}
            for uid in wanted:
                own = learned.get(uid, (0, 0)) if uid != SHARED else (0, 0)
                totals[uid] = (shared[0] + own[0], shared[1] + own[1])
            per_id: dict[int, dict[str, tuple[int, int]]] = {uid: {} for uid in ids}
            if any(sum(t) for t in totals.values()):
                token_list = json.dumps(sorted(set(tokens())))
                for uid, token, spam, ham in conn.execute(
                        f"SELECT user_id, token, spam, ham FROM bayes_tokens WHERE user_id IN ({marks})"
                        " AND token IN (SELECT value FROM json_each(?))", (*ids, token_list)):
                    per_id[uid][token] = (spam, ham)
        result = {}
        for uid in wanted:
            if not sum(totals[uid]):
                result[uid] = ({}, (0, 0))
                continue
            counts = dict(per_id[SHARED])
            if uid != SHARED:
                for token, (spam, ham) in per_id[uid].items():
                    base = counts.get(token, (0, 0))
                    counts[token] = (base[0] + spam, base[1] + ham)
            result[uid] = (counts, totals[uid])
        return result

    def bayes_learn(self, user_id: int, blob_sha256: bytes, tokens: Iterable[str], spam: bool) -> bool:
        """Learn one message as spam or ham for a user and the shared base. A message learned
        the other way before is unlearned first; one learned the same way is left alone.
        Returns whether anything changed."""
        token_list = sorted(set(tokens))
        new = int(spam)

        def adjust(tx, as_spam: int, sign: int) -> None:
            column = "spam" if as_spam else "ham"
            for uid in (user_id, SHARED):
                tx.execute(f"INSERT INTO bayes_totals(user_id, {column}) VALUES (?, max(?, 0))"
                           f" ON CONFLICT(user_id) DO UPDATE SET {column} = max({column} + ?, 0)", (uid, sign, sign))
                tx.executemany(f"INSERT INTO bayes_tokens(user_id, token, {column}) VALUES (?, ?, max(?, 0))"
                               f" ON CONFLICT(user_id, token) DO UPDATE SET {column} = max({column} + ?, 0)",
                               [(uid, t, sign, sign) for t in token_list])

        def job(tx):
            row = tx.execute("SELECT spam FROM bayes_trained WHERE user_id = ? AND blob_sha256 = ?",
                             (user_id, blob_sha256)).fetchone()
            if row is not None and row["spam"] == new:
                return False
            if row is not None:
                adjust(tx, row["spam"], -1)
            adjust(tx, new, +1)
            tx.execute("INSERT OR REPLACE INTO bayes_trained VALUES (?,?,?)", (user_id, blob_sha256, new))
            return True

        return self.db.write(job)

    def bayes_trained_spam(self, user_id: int, blob_id: int) -> bool:
        """Whether the user's classifier learned this stored message as spam."""
        with self.db.reader() as conn:
            row = conn.execute("SELECT t.spam FROM bayes_trained t JOIN blobs b ON b.sha256 = t.blob_sha256"
                               " WHERE t.user_id = ? AND b.id = ?", (user_id, blob_id)).fetchone()
        return bool(row and row["spam"])

    def arrival_facts(self, blob_id: int) -> tuple[bool, bool, str] | None:
        """(is a multipart/report, carries "X-Spam-Status: Yes", Message-ID) of a stored
        message, read from its analysis without loading it; None when it is gone."""
        with self.db.reader() as conn:
            row = conn.execute("SELECT json_extract(info, '$.root.maintype') || '/' || json_extract(info, '$.root.subtype'),"
                               " instr(json_extract(info, '$.header_search'), 'X-Spam-Status: Yes'),"
                               " json_extract(info, '$.message_id') FROM parsed WHERE blob_id = ?", (blob_id,)).fetchone()
        return None if row is None else (row[0] == "multipart/report", bool(row[1]), row[2] or "")

    def has_pending_receipts(self, user_id: int) -> bool:
        with self.db.reader() as conn:
            return conn.execute("SELECT 1 FROM receipts_requested WHERE user_id = ? AND state = 'pending' LIMIT 1",
                                (user_id,)).fetchone() is not None

    def arrivals(self, user_id: int, mailbox_id: int, uids: Iterable[int]
                 ) -> tuple[str | None, list[tuple[MessageRow, bool, bool, bool]]] | None:
        """What the MDA's trainer asks about messages that appeared in a mailbox, in one read:
        the mailbox's special use, and for each row still there with its analysis stored that
        the trainer has a use for, (row, is a multipart/report, carries "X-Spam-Status: Yes",
        the user's classifier learned it as spam). Those are every row of a \\Junk mailbox,
        elsewhere only reports and rows filed or trained as spam: plain mail arriving in
        INBOX, nearly every delivery, comes back as no row at all. None when the mailbox is gone."""
        uid_list = sorted(set(uids))[:5000]
        with self.db.reader() as conn:
            box = conn.execute("SELECT special_use FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            if box is None:
                return None
            rows = conn.execute(
                "SELECT * FROM (SELECT m.uid, m.flags, m.size, m.internaldate, m.modseq, m.blob_id,"
                " json_extract(p.info, '$.root.maintype') || '/' || json_extract(p.info, '$.root.subtype') AS type,"
                " instr(json_extract(p.info, '$.header_search'), 'X-Spam-Status: Yes') AS filed_as_spam,"
                " (SELECT t.spam FROM bayes_trained t JOIN blobs b ON b.sha256 = t.blob_sha256"
                "  WHERE t.user_id = ? AND b.id = m.blob_id) AS trained_spam"
                " FROM messages m JOIN parsed p ON p.blob_id = m.blob_id"
                f" WHERE m.mailbox_id = ? AND m.uid IN ({','.join('?' * len(uid_list))}))"
                " WHERE ? OR type = 'multipart/report' OR filed_as_spam OR trained_spam",
                (user_id, mailbox_id, *uid_list, box[0] == "\\Junk")).fetchall() if uid_list else []
        return box[0], [(MessageRow(r[0], parse_flags(r[1]), r[2], r[3], r[4], r[5]), r[6] == "multipart/report",
                         bool(r[7]), bool(r[8])) for r in rows]

    def message_rows(self, mailbox_id: int, uids: Iterable[int]) -> list[MessageRow]:
        """The rows of these UIDs that still exist (for event listeners)."""
        uid_list = sorted(set(uids))[:5000]
        with self.db.reader() as conn:
            rows = conn.execute(f"SELECT uid, flags, size, internaldate, modseq, blob_id FROM messages"
                                f" WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(uid_list))})",
                                (mailbox_id, *uid_list)).fetchall() if uid_list else []
        return [MessageRow(r["uid"], parse_flags(r["flags"]), r["size"], r["internaldate"], r["modseq"],
                           r["blob_id"]) for r in rows]

    # -- Sieve scripts and vacation --------------------------------------------------------

    def _write_scripts(self, user_id: int, job):
        """``_write_accounts`` for a change of a user's scripts. The event goes into the change
        journal, so every worker process forgets the scripts it kept for deliveries."""
        def with_event(tx):
            result = job(tx)
            tx.emit(AccountsChanged("rules-changed", str(user_id)))
            return result

        return self._write_accounts(with_event)

    def get_sieve(self, user_id: int) -> str:
        """The text of the user's active script ("" when none is active)."""
        return self.delivery_scripts(user_id)[1]

    def delivery_scripts(self, user_id: int) -> tuple[str, str]:
        """(account rules, active script) of a user, each "" when absent: what the MDA runs,
        in that order, for every delivery. Kept in the accounts cache until the next change
        of scripts or accounts."""
        cache = self.accounts_cache
        scripts = cache.get(("sieve", user_id))
        if scripts is None:
            generation = cache.generation
            with self.db.reader() as conn:
                before = conn.execute("SELECT script FROM sieve_account_rules WHERE user_id = ?", (user_id,)).fetchone()
                active = conn.execute("SELECT script FROM sieve_scripts WHERE user_id = ? AND active",
                                      (user_id,)).fetchone()
            scripts = (before["script"] if before else "", active["script"] if active else "")
            cache.put(("sieve", user_id), generation, scripts)
        return scripts

    def set_sieve(self, user_id: int, script: str) -> None:
        """Replace the text of the user's active script with a (validated) one; with none
        active, store it as ``DEFAULT_SCRIPT`` and activate it. "" deactivates the active
        script and keeps it in the list."""
        def job(tx):
            active = tx.execute("SELECT name FROM sieve_scripts WHERE user_id = ? AND active", (user_id,)).fetchone()
            if not script:
                tx.execute("UPDATE sieve_scripts SET active = 0 WHERE user_id = ?", (user_id,))
            elif active is not None:
                tx.execute("UPDATE sieve_scripts SET script = ?, updated = ? WHERE user_id = ? AND name = ?",
                           (script, time.time(), user_id, active["name"]))
            else:
                tx.execute("INSERT OR REPLACE INTO sieve_scripts VALUES (?,?,?,1,?)",
                           (user_id, DEFAULT_SCRIPT, script, time.time()))

        self._write_scripts(user_id, job)

    # RFC 5804 §1.6 (names), §2.6-§2.11 (the operations ManageSieve offers).

    def list_sieve_scripts(self, user_id: int) -> list[SieveScript]:
        """The user's scripts by name; at most one is active (RFC 5804 §2.7 LISTSCRIPTS)."""
        with self.db.reader() as conn:
            rows = conn.execute("SELECT name, active, length(CAST(script AS BLOB)) AS size, updated"
                                " FROM sieve_scripts WHERE user_id = ? ORDER BY name", (user_id,)).fetchall()
        return [SieveScript(r["name"], bool(r["active"]), r["size"], r["updated"]) for r in rows]

    def get_sieve_script(self, user_id: int, name: str) -> str:
        """The text of one script (RFC 5804 §2.9 GETSCRIPT). Raises NotFound."""
        with self.db.reader() as conn:
            row = conn.execute("SELECT script FROM sieve_scripts WHERE user_id = ? AND name = ?",
                               (user_id, name)).fetchone()
        if row is None:
            raise NotFound(f"no script {name!r}")
        return row["script"]

    def put_sieve_script(self, user_id: int, name: str, script: str, max_scripts: int) -> None:
        """Create a script or replace its text, keeping whether it is active (RFC 5804 §2.6
        PUTSCRIPT); the caller has checked it. Raises QuotaExceeded when a new script would
        make more than ``max_scripts``."""
        def job(tx):
            exists = tx.execute("SELECT 1 FROM sieve_scripts WHERE user_id = ? AND name = ?",
                                (user_id, name)).fetchone()
            if exists:
                tx.execute("UPDATE sieve_scripts SET script = ?, updated = ? WHERE user_id = ? AND name = ?",
                           (script, time.time(), user_id, name))
                return
            count = tx.execute("SELECT count(*) FROM sieve_scripts WHERE user_id = ?", (user_id,)).fetchone()[0]
            if count >= max_scripts:
                raise QuotaExceeded(f"at most {max_scripts} scripts")
            tx.execute("INSERT INTO sieve_scripts VALUES (?,?,?,0,?)", (user_id, name, script, time.time()))

        self._write_scripts(user_id, job)

    def activate_sieve_script(self, user_id: int, name: str | None) -> None:
        """Make ``name`` the one active script, or (None) none (RFC 5804 §2.8 SETACTIVE).
        Raises NotFound."""
        def job(tx):
            if name is not None and not tx.execute("SELECT 1 FROM sieve_scripts WHERE user_id = ? AND name = ?",
                                                   (user_id, name)).fetchone():
                raise NotFound(f"no script {name!r}")
            tx.execute("UPDATE sieve_scripts SET active = 0 WHERE user_id = ? AND active", (user_id,))
            if name is not None:
                tx.execute("UPDATE sieve_scripts SET active = 1 WHERE user_id = ? AND name = ?", (user_id, name))

        self._write_scripts(user_id, job)

    def delete_sieve_script(self, user_id: int, name: str) -> None:
        """RFC 5804 §2.10 DELETESCRIPT. Raises NotFound, or ScriptActive for the active one."""
        def job(tx):
            row = tx.execute("SELECT active FROM sieve_scripts WHERE user_id = ? AND name = ?",
                             (user_id, name)).fetchone()
            if row is None:
                raise NotFound(f"no script {name!r}")
            if row["active"]:
                raise ScriptActive(f"script {name!r} is active")
            tx.execute("DELETE FROM sieve_scripts WHERE user_id = ? AND name = ?", (user_id, name))

        self._write_scripts(user_id, job)

    def rename_sieve_script(self, user_id: int, old: str, new: str) -> None:
        """RFC 5804 §2.11.1 RENAMESCRIPT; an active script stays active. Raises NotFound or
        AlreadyExists."""
        def job(tx):
            if not tx.execute("SELECT 1 FROM sieve_scripts WHERE user_id = ? AND name = ?", (user_id, old)).fetchone():
                raise NotFound(f"no script {old!r}")
            if tx.execute("SELECT 1 FROM sieve_scripts WHERE user_id = ? AND name = ?", (user_id, new)).fetchone():
                raise AlreadyExists(f"script {new!r} already exists")
            tx.execute("UPDATE sieve_scripts SET name = ?, updated = ? WHERE user_id = ? AND name = ?",
                       (new, time.time(), user_id, old))

        self._write_scripts(user_id, job)

    def get_account_rules(self, user_id: int) -> str:
        """The user's account-rules script ("" when none): the rules the account page keeps
        (out of office, forwarding, simple filters), run before the active script."""
        return self.delivery_scripts(user_id)[0]

    def set_account_rules(self, user_id: int, script: str, model: str = "") -> None:
        """Store the (validated) account-rules script and the account page's rules it was
        made from (``model``, JSON; see ``account_rules_model``), in one transaction. Both ""
        removes them."""
        self.update_account_rules(user_id, lambda _old: (script, model))

    def update_account_rules(self, user_id: int, change: Callable[[str], tuple[str, str]]) -> None:
        """Read the saved rules (``account_rules_model``), give them to ``change`` and store the
        (script, model) it returns, all in one write transaction: two panels saved at the same
        moment each see the other's change, so neither undoes it. ``change`` runs in the
        writer thread and must not use the store; what it raises is raised here, with
        nothing written."""
        def job(tx):
            row = tx.execute("SELECT model FROM sieve_account_rules WHERE user_id = ?", (user_id,)).fetchone()
            script, model = change(row["model"] if row else "")
            if script or model:
                tx.execute("INSERT OR REPLACE INTO sieve_account_rules(user_id, script, updated, model)"
                           " VALUES (?,?,?,?)", (user_id, script, time.time(), model))
            else:
                tx.execute("DELETE FROM sieve_account_rules WHERE user_id = ?", (user_id,))

        self._write_scripts(user_id, job)

    def account_rules_model(self, user_id: int) -> str:
        """The account page's out of office, forwarding and filters as last saved (JSON of
        ``mda.account_rules.AccountRules``; "" when never saved)."""
        with self.db.reader() as conn:
            row = conn.execute("SELECT model FROM sieve_account_rules WHERE user_id = ?", (user_id,)).fetchone()
        return row["model"] if row else ""

    def vacation_due(self, user_id: int, sender: str, handle: str, period: float) -> bool:
        """RFC 5230 §4.2: True (and remembered) when ``sender`` got no reply with this
        handle from this user within ``period`` seconds."""
        now = time.time()

        def job(tx):
            row = tx.execute("SELECT sent FROM vacation_sent WHERE user_id = ? AND sender = ? AND handle = ?",
                             (user_id, sender.lower(), handle)).fetchone()
            if row is not None and now - row["sent"] < period:
                return False
            tx.execute("INSERT OR REPLACE INTO vacation_sent VALUES (?,?,?,?)", (user_id, sender.lower(), handle, now))
            return True

        return self.db.write(job)

    def greylist_pass(self, network: str, sender: str, recipients: Sequence[str], delay: float,
                      window: float, keep: float) -> bool:
        """RFC 6647 §4.1: True when every (network, sender, recipient) triplet was seen
        between ``delay`` and ``window`` seconds ago (or passed within ``keep``); new or
        too-early triplets are remembered and False is returned."""
        now = time.time()

        def job(tx):
            tx.execute("DELETE FROM greylist WHERE (passed IS NULL AND first_seen < ?) OR last_seen < ?",
                       (now - window, now - keep))
            ok = True
            for recipient in recipients:
                key = (network, sender.lower(), recipient.lower())
                row = tx.execute("SELECT first_seen, passed FROM greylist WHERE network = ? AND sender = ?"
                                 " AND recipient = ?", key).fetchone()
                if row is None:
                    tx.execute("INSERT INTO greylist VALUES (?,?,?,?,NULL,?)", (*key, now, now))
                    ok = False
                elif row["passed"] is not None or now - row["first_seen"] >= delay:
                    tx.execute("UPDATE greylist SET passed = coalesce(passed, ?), last_seen = ? WHERE network = ?"
                               " AND sender = ? AND recipient = ?", (now, now, *key))
                else:
                    ok = False
            return ok

        return self.db.write(job)

    def _forget_user_filters(self, tx, user_id: int) -> None:
        """Inside ``delete_user``: the user's rules, Bayes data, vacation memory and ledger go too
        (user ids can be reused; the shared Bayes base keeps what it learned)."""
        for table in ("sieve_scripts", "sieve_account_rules", "bayes_tokens", "bayes_totals", "bayes_trained", "vacation_sent",
                      "receipts_sent", "receipts_requested"):
            tx.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))

    # -- per-user settings (users.settings JSON) -------------------------------------------

    def user_settings(self, user_id: int) -> dict:
        with self.db.reader() as conn:
            row = conn.execute("SELECT settings FROM users WHERE id = ?", (user_id,)).fetchone()
        return json.loads(row["settings"] or "{}") if row else {}

    def set_user_setting(self, user_id: int, key: str, value) -> None:
        def job(tx):
            row = tx.execute("SELECT settings FROM users WHERE id = ?", (user_id,)).fetchone()
            if row is None:
                raise NotFound("no such user")
            settings = json.loads(row["settings"] or "{}")
            settings[key] = value
            tx.execute("UPDATE users SET settings = ? WHERE id = ?", (json.dumps(settings), user_id))

        self.db.write(job)

    # -- receipt ledger --------------------------------------------------------------------

    def sent_receipts(self, user_id: int, limit: int = 1000) -> list[SentReceipt]:
        with self.db.reader() as conn:
            rows = conn.execute("SELECT * FROM receipts_sent WHERE user_id = ? ORDER BY id DESC LIMIT ?",
                                (user_id, limit)).fetchall()
        return [SentReceipt(**{k: r[k] for k in r.keys()}) for r in rows]

    def update_sent_receipt(self, user_id: int, column: str, state: str, detail: str, recipient: str,
                            envid: str = "", message_id: str = "") -> int:
        """Record a returning DSN (``column`` "delivery") or MDN ("display") on the user's
        ledger rows that match the recipient and the ENVID or the Message-ID. Returns rows changed."""
        if column not in ("delivery", "display"):
            raise ValueError(column)
        key, value = ("envid", envid) if envid else ("message_id", message_id)
        if not value:
            return 0

        def job(tx):
            return tx.execute(f"UPDATE receipts_sent SET {column} = ?, detail = ?, updated = ?"
                              f" WHERE user_id = ? AND {key} = ? AND lower(recipient) = lower(?) AND {column} != ''",
                              (state, detail, time.time(), user_id, value, recipient)).rowcount

        return self.db.write(job)

    def requested_receipts(self, user_id: int, limit: int = 1000) -> list[RequestedReceipt]:
        with self.db.reader() as conn:
            rows = conn.execute("SELECT user_id, message_id, notify_to, return_path, subject, received, state"
                                " FROM receipts_requested WHERE user_id = ? ORDER BY received DESC LIMIT ?",
                                (user_id, limit)).fetchall()
        return [RequestedReceipt(**{k: r[k] for k in r.keys()}) for r in rows]

    def pending_receipt(self, user_id: int, message_id: str) -> RequestedReceipt | None:
        """The pending read-receipt request of a user's message, if any."""
        with self.db.reader() as conn:
            row = conn.execute("SELECT user_id, message_id, notify_to, return_path, subject, received, state"
                               " FROM receipts_requested WHERE user_id = ? AND message_id = ? AND state = 'pending'",
                               (user_id, message_id)).fetchone()
        return RequestedReceipt(**{k: row[k] for k in row.keys()}) if row else None

    def settle_receipt(self, user_id: int, message_id: str, state: str, notice: Notice | None = None) -> bool:
        """Mark a pending request ``state`` and write its MDN, once: False when it was no
        longer pending (another reader got there first)."""
        prepared = prepare(notice.raw) if notice else None
        when = time.time()

        def job(tx):
            n = tx.execute("UPDATE receipts_requested SET state = ?, updated = ? WHERE user_id = ? AND message_id = ?"
                           " AND state = 'pending'", (state, when, user_id, message_id)).rowcount
            if not n:
                return False
            if notice is not None:
                blob_id = self._put_blob(tx, prepared, len(notice.deliveries) + len(notice.queue))
                for d in notice.deliveries:
                    mailbox_id = self._target_mailbox(tx, d.user_id, d.mailbox)
                    self._insert_message(tx, d.user_id, mailbox_id, blob_id, len(prepared.raw), d.flags, when)
                ids = tuple(self._enqueue(tx, blob_id, e, when) for e in notice.queue)
                if ids:
                    tx.emit(QueueChanged("queued", ids))
            return True

        return self.db.write(job)


def _quarantined(r) -> Quarantined:
    return Quarantined(r["id"], r["sender"], tuple(json.loads(r["recipients"] or "[]")), r["reason"], r["created"],
                       r["size"], r["blob_id"])
