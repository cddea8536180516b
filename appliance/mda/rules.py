"""Per-user rules: each recipient's Sieve scripts (kept in the store) decide their copy.

Two scripts may run, in this order and as one (``sieve.run_in_order``): the account rules
the user's account page keeps (out of office, forwarding, simple filters), then the script
the user made active (over ManageSieve, or the admin with ``kotakpos rules``). Activating
another script therefore never turns the out-of-office off.

The script's actions become the recipient's verdict: folders (fileinto / keep),
IMAP flags, redirects, discard, reject, and a vacation reply (RFC 5230) sent at most
once per sender and period, never to lists, bulk mail, automatic mail or the null
sender. An implicit keep leaves earlier filters' folder (Junk for spam) alone; an
explicit ``keep`` means INBOX.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
import time
from email.utils import formatdate

from appliance.mda import outbound, sieve
from appliance.mda.filter import ACCEPT, Check, Filter, Incoming, Verdict
from appliance.store import InvalidName, User, normalize_mailbox_name

log = logging.getLogger("kotakpos.mda")


def missing_folders(store, user_id: int, commands: list[sieve.Command]) -> list[sieve.Filing]:
    """The ``fileinto``s of a script, without ``:create``, to folders the user lacks: such
    mail is kept in INBOX (see ``RulesCheck.folders``), which whoever stores the script
    should hear about."""
    return [f for f in sieve.filings(commands) if not f.create and store.get_mailbox(user_id, f.folder) is None]


@functools.lru_cache(maxsize=256)
def compiled(script: str) -> list[sieve.Command]:
    """Parsed scripts, by text (a script changes rarely and is stored only when valid)."""
    return sieve.parse(script)


class RulesFilter(Filter):
    name = "rules"
    runs_locally = True  # Sieve and the store only

    def __init__(self, ctx):
        self.ctx = ctx

    def check(self, msg: Incoming) -> Check:
        return RulesCheck(self, msg)


class RulesCheck(Check):
    def __init__(self, f: RulesFilter, msg: Incoming):
        super().__init__(msg)
        self.f = f

    def check_rcpt(self, user: User) -> Verdict:
        store = self.f.ctx.store
        scripts = [s for s in store.delivery_scripts(user.id) if s]  # account rules first, then the active script
        if not scripts:
            return ACCEPT
        msg = self.msg
        env = sieve.Env(header=msg.header, addresses=msg.addresses, envelope_from=msg.sender,
                        envelope_to=user.address, size=len(msg.raw),
                        mailbox_exists=lambda name: store.get_mailbox(user.id, name) is not None)
        actions = sieve.run_in_order([compiled(s) for s in scripts], env)
        notices = []
        if actions.vacation is not None:
            reply = self.vacation(user, actions.vacation)
            if reply is not None:
                notices.append(reply)
        flags = tuple(sorted(actions.flags))
        if actions.reject is not None:
            return Verdict(reject=(550, "5.7.1", _one_line(actions.reject)), reason=f"rejected by the rules of {user.address}",
                           notices=tuple(notices))
        if actions.discarded and not (actions.explicit_keep or actions.folders):
            return Verdict(discard=True, redirect=tuple(actions.redirects), notices=tuple(notices),
                           reason=f"discarded by the rules of {user.address}")
        folders, created, missed = self.folders(user, actions.filings)
        if actions.explicit_keep and "INBOX" not in folders:
            folders.insert(0, "INBOX")
        if not folders and not actions.keep:
            # only redirected: no local copy
            return Verdict(discard=True, redirect=tuple(actions.redirects), notices=tuple(notices),
                           reason=f"redirected by the rules of {user.address}")
        return Verdict(folders=tuple(folders), flags=flags, redirect=tuple(actions.redirects), notices=tuple(notices),
                       create=tuple(created), reason="; ".join(missed))

    def folders(self, user: User, filings: list[sieve.Filing]) -> tuple[list[str], list[str], list[str]]:
        """Where the fileinto actions put the copy: (folders, those to create, what went to
        INBOX instead and why). RFC 5490 §3.2: only ``:create`` makes a missing folder; without
        it the copy is kept in INBOX (RFC 5228 §4.1 lets an implementation do that), and the
        log says so with the rule's line."""
        store = self.f.ctx.store
        folders, created, missed = [], [], []
        for filing in filings:
            try:
                name = normalize_mailbox_name(filing.folder)
            except InvalidName:
                missed.append(f'fileinto "{filing.folder}" at line {filing.line}: not a folder name, kept in INBOX')
                name = "INBOX"
            if store.get_mailbox(user.id, name) is None:
                if filing.create:
                    created.append(name)
                else:
                    missed.append(f'fileinto "{name}" at line {filing.line}: no such folder, kept in INBOX')
                    name = "INBOX"
            if name not in folders:
                folders.append(name)
        return folders, created, missed

    # RFC 5230 §4.5-§4.6 and RFC 3834: whom not to answer, and how an answer looks.
    def vacation(self, user: User, v: dict):
        msg = self.msg
        sender = msg.sender.lower()
        if not sender or _is_automatic(msg, sender):
            return None
        mine = {user.address.lower()} | {a.lower() for a in sieve._strings(v.get("addresses", []))}
        recipients = {a.lower() for a in msg.addresses("To") + msg.addresses("Cc")}
        if not mine & recipients:
            return None  # §4.5: only mail addressed to the user in To/Cc gets an answer
        days = max(int(v.get("days", self.f.ctx.config.mda.vacation_days)), 1)
        handle = v.get("handle") or hashlib.sha256(
            f"{v.get('subject', '')}\0{v['reason']}".encode()).hexdigest()[:16]
        if not self.f.ctx.store.vacation_due(user.id, sender, handle, days * 86400.0):
            return None
        subject = v.get("subject") or f"Auto: {msg.info.subject}".strip()
        original_id = msg.info.message_id
        lines = [
            f"From: {v.get('from') or user.address}",
            f"To: <{msg.sender}>",
            f"Subject: {_one_line(subject)}",
            f"Date: {formatdate(time.time(), localtime=True)}",
            f"Message-ID: <{secrets.token_hex(12)}@{msg.hostname}>",
            "Auto-Submitted: auto-replied (vacation)",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ]
        if original_id:
            lines += [f"In-Reply-To: {original_id}", f"References: {original_id}"]
        raw = ("\r\n".join(lines) + "\r\n\r\n" + v["reason"].replace("\r\n", "\n").replace("\n", "\r\n")
               + "\r\n").encode("utf-8")
        self.f.ctx.count("mda.vacation")
        # RFC 5230 §5.1: the reply goes out with the null envelope sender.
        return outbound.notice(self.f.ctx.store, "", raw, [msg.sender])


def _is_automatic(msg: Incoming, sender: str) -> bool:
    local = sender.partition("@")[0]
    if local in ("mailer-daemon", "postmaster", "listserv", "majordomo") or local.startswith("owner-") \
            or local.endswith("-request"):
        return True
    auto = [v.strip().lower() for v in msg.header("Auto-Submitted")]
    if any(not v.startswith("no") for v in auto):
        return True
    if any(v.strip().lower() in ("bulk", "list", "junk") for v in msg.header("Precedence")):
        return True
    return any(msg.header(h) for h in ("List-Id", "List-Unsubscribe", "List-Post"))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]
