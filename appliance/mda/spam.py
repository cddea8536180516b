"""Spam scoring: header and content heuristics, sender authentication, blocklists, Bayes, spamd.

The message-wide part of the score (heuristics, SPF/DKIM/DMARC results from the auth
filter, DNS blocklists, spamd, the shared Bayes base) is computed once in
``check_body``; from ``reject_score`` on the message is refused (550 5.7.1). Each
recipient's score adds their own Bayes opinion in ``check_rcpt``: from ``junk_score``
on their copy is filed into Junk. Every copy gets X-Spam-Status and X-Spam-Score.
Mail from logged-in users and trusted networks is not scored.
"""

from __future__ import annotations

import ipaddress
import logging
import re

from appliance.mda import bayes, spamd
from appliance.mda.dnsquery import Resolver, Unavailable
from appliance.mda.filter import ACCEPT, Check, Filter, Incoming, Verdict
from appliance.store import User
from appliance.store.filters import SHARED

log = logging.getLogger("kotakpos.mda")

REFUSED = (550, "5.7.1", "Message refused as spam")
JUNK = "Junk"

# Phrases that rarely appear in mail people want (each found adds its points once).
_PHRASES = re.compile(r"\b(you have won|lottery|viagra|cialis|100% free|risk[- ]free|wire transfer|"
                      r"claim your prize|act now|limited time offer|earn \$\d+|crypto ?currency investment)\b", re.I)


def heuristics(msg: Incoming) -> list[tuple[str, float]]:
    """(test name, points) of the header, content and authentication tests that hit."""
    hits: list[tuple[str, float]] = []
    if not msg.author.domains:  # no From field, or none with an address a reader can check
        hits.append(("MISSING_FROM", 2.0))
    if not msg.header("Date"):
        hits.append(("MISSING_DATE", 1.0))
    if not msg.header("Message-ID"):
        hits.append(("MISSING_MID", 1.0))
    subject = msg.info.subject
    if not subject:
        hits.append(("MISSING_SUBJECT", 0.5))
    elif len(subject) > 10 and subject.upper() == subject and any(c.isalpha() for c in subject):
        hits.append(("SUBJ_ALL_CAPS", 1.0))
    if "!!!" in subject:
        hits.append(("SUBJ_EXCLAIM", 1.0))
    root = msg.info.root
    if root.maintype == "text" and root.subtype == "html":
        hits.append(("HTML_ONLY", 0.5))
    phrases = {m.lower() for m in _PHRASES.findall(msg.body_text[:200_000] + " " + subject)}
    if phrases:
        hits.append(("SPAM_PHRASES", min(1.0 * len(phrases), 4.0)))
    auth = msg.notes.get("auth", {})
    if auth.get("arc_trusted"):
        # A forwarder the administrator trusts sealed what it verified (RFC 8617, local policy):
        # SPF and DMARC failing here is what forwarding does, not evidence against the sender.
        auth = {k: v for k, v in auth.items() if k not in ("spf", "dmarc")}
    if auth.get("spf") == "fail":
        hits.append(("SPF_FAIL", 2.0))
    elif auth.get("spf") == "softfail":
        hits.append(("SPF_SOFTFAIL", 1.0))
    if "fail" in auth.get("dkim", ()) and "pass" not in auth.get("dkim", ()):
        hits.append(("DKIM_INVALID", 1.0))
    if auth.get("dmarc") == "fail":
        policy = auth.get("dmarc_policy")
        hits.append({"reject": ("DMARC_REJECT", 15.0), "quarantine": ("DMARC_QUARANTINE", 5.0)}.get(
            policy, ("DMARC_NONE", 0.5)))
    return hits


class SpamFilter(Filter):
    name = "spam"

    def __init__(self, ctx):
        cfg = ctx.config.mda
        self.ctx = ctx
        self.cfg = cfg
        self.resolver = Resolver(ctx.config.dns.resolver, cfg.dns_timeout) if cfg.dnsbl else None
        # heuristics and Bayes compute and read the store; blocklists and spamd ask other hosts
        self.runs_locally = not cfg.spamd and (self.resolver is None or not self.resolver.configured)

    def check(self, msg: Incoming) -> Check:
        return SpamCheck(self, msg)


class SpamCheck(Check):
    def __init__(self, f: SpamFilter, msg: Incoming):
        super().__init__(msg)
        self.f = f
        self.hits: list[tuple[str, float]] = []
        self._words: list[str] | None = None
        self._counts: dict = {}  # classifier id -> (token counts, totals), read in check_body

    @property
    def words(self) -> list[str]:
        """The message's Bayes tokens, made on first need (never when nothing was learned)."""
        if self._words is None:
            self._words = bayes.tokens(self.msg.info, self.msg.body_text, self.msg.author)
        return self._words

    def check_body(self) -> Verdict:
        msg = self.msg
        if msg.internal:
            return ACCEPT
        self.hits = heuristics(msg) + self.blocklists() + self.spamd()
        # The shared base and every recipient's classifier in one read of the store
        self._counts = self.f.ctx.store.bayes_counts_many([SHARED] + [u.id for u in msg.users],
                                                          lambda: self.words)
        name, points = bayes.score(self._bayes(SHARED))
        shared = self.hits + ([(name, points)] if name else [])
        total = sum(p for _, p in shared)
        msg.notes.setdefault("spam", {})["message"] = total
        if total >= self.f.cfg.reject_score:
            self.f.ctx.count("mda.spam")
            return Verdict(reject=REFUSED, reason=f"spam score {total:.1f} ({_names(shared)})")
        return ACCEPT

    def check_rcpt(self, user: User) -> Verdict:
        if self.msg.internal:
            return ACCEPT
        name, points = bayes.score(self._bayes(user.id))
        hits = self.hits + ([(name, points)] if name else [])
        total = sum(p for _, p in hits)
        spam = total >= self.f.cfg.junk_score
        self.msg.notes.setdefault("spam", {})[user.id] = total
        headers = (("X-Spam-Status", f"{'Yes' if spam else 'No'}, score={total:.1f} required={self.f.cfg.junk_score:.1f}"
                                     f" tests={_names(hits) or 'none'}"),
                   ("X-Spam-Score", f"{total:.1f}"))
        if spam:
            self.f.ctx.count("mda.spam")
            return Verdict(add_headers=headers, folders=(JUNK,), reason=f"spam score {total:.1f} for {user.address}")
        return Verdict(add_headers=headers)

    def _bayes(self, user_id: int) -> float | None:
        known = self._counts.get(user_id)
        counts, totals = known if known is not None else self.f.ctx.store.bayes_counts(user_id, self.words)
        if not sum(totals):
            return None  # nothing learned: no opinion (bayes.probability says so too)
        return bayes.probability(counts, totals, self.words)

    def blocklists(self) -> list[tuple[str, float]]:
        """RFC 5782: the client's reversed IPv4 address under each list's zone."""
        if self.f.resolver is None or not self.msg.envelope.client_ip:
            return []
        try:
            ip = ipaddress.ip_address(self.msg.envelope.client_ip)
        except ValueError:
            return []
        if ip.version != 4 or ip.is_private or ip.is_loopback:
            return []
        reversed_ip = ".".join(reversed(str(ip).split(".")))
        hits = []
        for zone in self.f.cfg.dnsbl:
            try:
                if self.f.resolver.query(f"{reversed_ip}.{zone}", "A"):
                    hits.append((f"DNSBL_{zone.upper().replace('.', '_')}", self.f.cfg.dnsbl_score))
            except Unavailable:
                break
        return hits

    def spamd(self) -> list[tuple[str, float]]:
        if not self.f.cfg.spamd:
            return []
        try:
            return [("SPAMD", spamd.check(self.f.cfg.spamd, self.msg.raw, self.f.cfg.spamd_timeout))]
        except spamd.SpamdError as e:
            self.f.ctx.count("mda.spamd_error")
            log.error("spamd check of %s failed: %s", self.msg.envelope.message_id, e)
            return []


def _names(hits: list[tuple[str, float]]) -> str:
    return ",".join(name for name, _ in hits)
