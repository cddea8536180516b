"""Admin API for the MDA: quarantine, per-user rules and the receipt ledger.

A mixin of ``AdminAPI`` (its ``PUBLIC`` names join the socket's); every method takes and
returns JSON-friendly values and raises ``AdminError`` with a message fit to show.
"""

from __future__ import annotations

import time

from appliance.store import Delivery, Notice, NotFound


class FiltersAdmin:
    FILTERS_PUBLIC = frozenset({
        "quarantine_list", "quarantine_show", "quarantine_release", "quarantine_delete",
        "rules_get", "rules_set", "rules_check", "rules_list", "rules_scripts", "receipts", "receipts_policy",
    })

    # -- quarantine ------------------------------------------------------------------------

    def quarantine_list(self, limit: int = 1000) -> list[dict]:
        """Held messages, oldest first."""
        out = []
        for q in self.store.list_quarantine(limit):
            info = self.store.get_info(q.blob_id)
            out.append({"id": q.id, "sender": q.sender, "recipients": list(q.recipients),
                        "reason": q.reason, "created": q.created, "size": q.size,
                        "subject": info.subject, "from": info.from_})
        return out

    def quarantine_show(self, quarantine_id: int) -> dict:
        """One held message with its bytes (as text, undecodable bytes replaced)."""
        q = self._quarantined(quarantine_id)
        raw = self.store.get_raw(q.blob_id)
        return {"id": q.id, "sender": q.sender, "recipients": list(q.recipients), "reason": q.reason,
                "created": q.created, "size": q.size, "message": raw.decode("utf-8", "replace")}

    def quarantine_release(self, quarantine_id: int) -> list[str]:
        """Deliver a held message to the INBOX of each recipient it was meant for, unfiltered;
        returns those addresses. Recipients deleted meanwhile are skipped."""
        from appliance.admin.api import AdminError
        q = self._quarantined(quarantine_id)
        users = [u for u in (self.store.get_user(a) for a in q.recipients) if u is not None]
        if not users:
            raise AdminError(f"quarantined message {quarantine_id} has no recipient left; delete it instead")
        raw = self.store.get_raw(q.blob_id)
        copy = Notice(raw, tuple(Delivery(u.id) for u in users))
        self._filters_store_call(self.store.release_quarantined, quarantine_id, [copy])
        return [u.address for u in users]

    def quarantine_delete(self, quarantine_id: int) -> bool:
        self._filters_store_call(self.store.delete_quarantined, int(quarantine_id))
        return True

    def _quarantined(self, quarantine_id: int):
        return self._filters_store_call(self.store.get_quarantined, int(quarantine_id))

    # -- per-user rules (Sieve) ------------------------------------------------------------

    def rules_list(self, address: str) -> list[dict]:
        """The user's Sieve scripts (several over ManageSieve, one active):
        [{"name", "active", "size", "updated"}], by name."""
        return [{"name": s.name, "active": s.active, "size": s.size, "updated": s.updated}
                for s in self.store.list_sieve_scripts(self._user(address).id)]

    def rules_scripts(self, address: str) -> dict:
        """Every script delivery may run for the user, as the TUI and ``kotakpos rules list``
        show them: {"account_rules": the account page's script ("" when none), run first;
        "scripts": ``rules_list``, the one marked active runs next}."""
        user = self._user(address)
        return {"account_rules": self.store.get_account_rules(user.id), "scripts": self.rules_list(address)}

    def rules_get(self, address: str, name: str = "") -> str:
        """The text of the user's script ``name``; without a name, of the active script ("" when
        none is active)."""
        user = self._user(address)
        if not name:
            return self.store.get_sieve(user.id)
        return self._filters_store_call(self.store.get_sieve_script, user.id, name)

    def rules_check(self, script: str, address: str = "") -> dict:
        """Parse a script without storing it: {"ok": bool, "line": n, "error": text, "warnings":
        [{"line": n, "folder": name, "warning": text}]}. With ``address``, each ``fileinto`` without ``:create``
        to a folder that user lacks is a warning: such mail is kept in INBOX."""
        from appliance.mda import rules, sieve
        try:
            commands = sieve.parse(script)
        except sieve.SieveError as e:
            return {"ok": False, "line": e.line, "error": e.reason, "warnings": []}
        warnings = []
        if address:
            for filing in rules.missing_folders(self.store, self._user(address).id, commands):
                warnings.append({"line": filing.line, "folder": filing.folder,
                                 "warning": f'fileinto "{filing.folder}": {address} has no '
                                 'such folder, so this mail goes to INBOX (create it, or use fileinto :create)'})
        return {"ok": True, "line": 0, "error": "", "warnings": warnings}

    def rules_set(self, address: str, script: str) -> bool:
        """Store a user's active script after checking it (with none active, it becomes the
        active script "rules"); an invalid script is refused with its line."""
        from appliance.admin.api import AdminError
        result = self.rules_check(script)
        if not result["ok"]:
            raise AdminError(f"line {result['line']}: {result['error']}")
        self.store.set_sieve(self._user(address).id, script)
        return True

    # -- receipts ----------------------------------------------------------------------------

    def receipts(self, address: str, limit: int = 200) -> dict:
        """The receipt ledger of a user: what came back for the mail they sent, and which
        incoming messages asked for a read receipt and whether one was sent."""
        user = self._user(address)
        sent = [{"message_id": r.message_id, "recipient": r.recipient, "subject": r.subject, "sent": r.sent,
                 "delivery": r.delivery, "display": r.display, "updated": r.updated, "detail": r.detail}
                for r in self.store.sent_receipts(user.id, limit)]
        requested = [{"message_id": r.message_id, "from": r.notify_to, "subject": r.subject,
                      "received": r.received, "state": r.state}
                     for r in self.store.requested_receipts(user.id, limit)]
        return {"address": user.address, "policy": self._receipt_policy(user.id), "sent": sent,
                "requested": requested, "at": time.time()}

    def receipts_policy(self, address: str, policy: str) -> str:
        """Set a user's read-receipt policy: "client", "auto" or "never"."""
        from appliance.admin.api import AdminError
        if policy not in ("client", "auto", "never"):
            raise AdminError("the policy is one of client, auto, never")
        self.store.set_user_setting(self._user(address).id, "read_receipts", policy)
        return policy

    def _receipt_policy(self, user_id: int) -> str:
        default = self.server.config.mda.read_receipts if self.server is not None else "client"
        return self.store.user_settings(user_id).get("read_receipts", default)

    def _filters_store_call(self, fn, *args):
        from appliance.admin.api import AdminError
        try:
            return fn(*args)
        except NotFound as e:
            raise AdminError(str(e)) from None
