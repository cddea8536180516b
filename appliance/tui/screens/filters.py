"""Filters and receipts: the quarantine, spam and virus statistics, per-user rules (Sieve)
and the receipt ledger.

The Rules tab lists, for the user under the cursor, every script delivery may run, as
``kotakpos rules ADDRESS list`` does: the account rules (the account page's), run first,
then each of the user's own scripts (ManageSieve's), the active one marked; the text of
the script under the cursor is shown beside the list.

The quarantine is live: the store announces each message held, released or deleted.
Receipts have no events of their own (the filters write them while an SMTP client
waits), so this screen reads them again whenever it is shown, after its own actions and
on mailbox events, which come with most receipt changes.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static, TabbedContent, TabPane, TextArea

from appliance.tui import models
from appliance.tui.forms import ConfirmScreen, Field, FormScreen, RulesEditor, TextScreen, one_of
from appliance.tui.screens.base import AdminScreen
from appliance.tui.table import Column, FitTable

TABS = ("quarantine", "stats", "rules", "receipts")
# On 80 columns: who sent what to whom and why it is held (v shows the whole message).
QUARANTINE_COLUMNS = (Column("ID", "id"), Column("Held", "held", narrow=False), Column("From", "from", narrow_width=12),
                      Column("Subject", "subject", narrow_width=16), Column("Reason", "reason", narrow_width=22),
                      Column("For", "for"))
USER_COLUMNS = (Column("User", "address"),)
SCRIPT_COLUMNS = (Column("Script", "name", narrow_width=24), Column("Runs", "runs"), Column("Size", "size"),
                  Column("Changed", "changed", narrow=False))
ACCOUNT_RULES = "account"   # the row key of the account rules (a script's key is "script:" + its name)
ACTIONS_BY_TAB = {          # the actions that apply on each tab; the footer shows only those
    "view": {"quarantine"}, "release": {"quarantine"}, "delete": {"quarantine"},
    "edit_rules": {"rules"}, "policy": {"receipts"},
}
COUNTER_NAMES = {           # counters the filters keep (ServerContext.count), in words
    "mda.accept": "delivered after filtering", "mda.junk": "filed as junk", "mda.spam": "spam",
    "mda.virus": "viruses", "mda.reject": "rejected at SMTP time", "mda.quarantine": "quarantined",
    "mda.discard": "discarded by rules", "mda.vacation": "vacation replies", "mda.mdn_sent": "read receipts sent",
    "mda.dsn_success": "delivery receipts sent", "mda.receipt_matched": "receipts matched to sent mail",
    "mda.learned_spam": "learned as spam", "mda.learned_ham": "learned as not spam",
    "mda.filter_error": "filter failures (mail kept)", "mda.timeout": "filter time-outs (mail kept)",
    "mda.clamd_error": "clamd unreachable", "mda.spamd_error": "spamd unreachable",
}


class FiltersScreen(AdminScreen):
    MODE = "filters"
    WATCHES = frozenset({"quarantine", "mailbox", "accounts"})
    RELOAD_DELAY = 1.0
    BINDINGS = [
        Binding("t", "next_tab", "Next tab"),
        Binding("v", "view", "View"),
        Binding("r", "release", "Release"),
        Binding("x", "delete", "Delete"),
        Binding("e", "edit_rules", "Edit rules"),
        Binding("p", "policy", "Receipt policy"),
        Binding("g", "reload", "Refresh"),
    ]

    def __init__(self):
        super().__init__()
        self._rules_user: str | None = None      # whose rules the Rules tab shows
        self._account_rules = ""                 # that user's account rules, as last read
        self._receipts_user: str | None = None   # whose ledger the Receipts tab shows

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="filter-tabs"):
            with TabPane("Quarantine", id="tab-quarantine"):
                yield FitTable(QUARANTINE_COLUMNS, id="quarantine", cursor_type="row", zebra_stripes=True)
            with TabPane("Statistics", id="tab-stats"):
                yield Static(id="filter-stats")
            with TabPane("Rules", id="tab-rules"):
                with Horizontal():
                    yield FitTable(USER_COLUMNS, id="rule-users", cursor_type="row", classes="user-list")
                    with Vertical():
                        scripts = FitTable(SCRIPT_COLUMNS, id="rule-scripts", cursor_type="row")
                        scripts.border_title = "Scripts, in the order they run"
                        yield scripts
                        script = TextArea("", read_only=True, id="rules-script", show_line_numbers=True)
                        script.border_title = "Sieve rules"
                        yield script
            with TabPane("Receipts", id="tab-receipts"):
                with Horizontal():
                    yield FitTable(USER_COLUMNS, id="receipt-users", cursor_type="row", classes="user-list")
                    with Vertical():
                        sent = DataTable(id="receipts-sent", cursor_type="row")
                        sent.border_title = "Receipts for mail they sent"
                        yield sent
                        asked = DataTable(id="receipts-asked", cursor_type="row")
                        asked.border_title = "Read receipts asked of them"
                        yield asked

    def on_mount(self) -> None:
        self.query_one("#receipts-sent", DataTable).add_columns("To", "Delivery", "Read", "Subject", "Sent")
        self.query_one("#receipts-asked", DataTable).add_columns("From", "Receipt", "Subject", "Received")

    def on_screen_suspend(self) -> None:
        self.stale = True

    def _tab(self) -> str:
        return self.query_one("#filter-tabs", TabbedContent).active.removeprefix("tab-")

    def action_next_tab(self) -> None:
        tabs = self.query_one("#filter-tabs", TabbedContent)
        tabs.active = f"tab-{TABS[(TABS.index(self._tab()) + 1) % len(TABS)]}"

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()
        first = {"quarantine": "#quarantine", "rules": "#rule-users", "receipts": "#receipt-users"}.get(self._tab())
        if first:
            self.query_one(first).focus()

    def show_action(self, action: str) -> None:
        tabs = ACTIONS_BY_TAB.get(action)
        if tabs and self._tab() not in tabs:
            self.query_one("#filter-tabs", TabbedContent).active = f"tab-{next(iter(tabs))}"

    def check_action(self, action: str, parameters) -> bool | None:
        tabs = ACTIONS_BY_TAB.get(action)
        return tabs is None or self._tab() in tabs

    # -- data ----------------------------------------------------------------------------

    def reload(self) -> None:
        self.call_admin("quarantine_list", then=self._show_quarantine)
        self.call_admin("status", then=self._show_stats)
        self.call_admin("users", then=self._show_users)

    def action_reload(self) -> None:
        self.reload()

    def _show_quarantine(self, held: list[dict]) -> None:
        table = self.query_one("#quarantine", FitTable)
        now = self.app.now()
        table.replace_rows([(str(q["id"]), {
            "id": str(q["id"]), "held": models.clock_time(q["created"], now), "from": models.sender(q["from"] or q["sender"]),
            "subject": models.clip(q["subject"] or "(no subject)", 30), "reason": models.clip(q["reason"], 30),
            "for": ", ".join(q["recipients"])}) for q in held])
        table.border_title = f"{len(held)} held" if held else "Nothing is held"

    def _show_stats(self, status: dict) -> None:
        counters = {k: v for k, v in status["stats"].items() if k.startswith("mda.")}
        lines = [f"[b]Since the server started[/b] (quarantined now: {status['counts']['quarantine']})", ""]
        lines += [f"  {COUNTER_NAMES.get(name, name):<32} {value:>8}" for name, value in sorted(counters.items())]
        if not counters:
            lines.append("  No message has passed the filters yet.")
        self.query_one("#filter-stats", Static).update("\n".join(lines))

    def _show_users(self, users: list[dict]) -> None:
        for table_id in ("#rule-users", "#receipt-users"):
            # keeps the cursor on the user it was on: a reload must not change whose rules are shown
            self.query_one(table_id, FitTable).replace_rows([(u["address"], {"address": u["address"]}) for u in users])
        self._load_rules()
        self._load_receipts()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "rule-users":
            self._load_rules()
        elif event.data_table.id == "rule-scripts":
            self._load_script()
        elif event.data_table.id == "receipt-users":
            self._load_receipts()

    def _load_rules(self) -> None:
        self._rules_user = self.selected_key(self.query_one("#rule-users", DataTable))
        if self._rules_user is not None:
            self.call_admin("rules_scripts", self._rules_user, then=self._show_scripts)

    def _show_scripts(self, found: dict) -> None:
        """The user's scripts in the order delivery runs them: the account rules, then the
        user's own, of which only the active one runs."""
        self._account_rules = found["account_rules"]
        rows = []
        if found["account_rules"]:
            rows.append((ACCOUNT_RULES, {"name": "(account rules)", "runs": "first",
                                         "size": models.size(len(found["account_rules"].encode())),
                                         "changed": "account page"}))
        for s in found["scripts"]:
            rows.append((f"script:{s['name']}", {"name": s["name"], "runs": "active" if s["active"] else "-",
                                                 "size": models.size(s["size"]),
                                                 "changed": models.clock_time(s["updated"], self.app.now())}))
        table = self.query_one("#rule-scripts", FitTable)
        active = next((f"script:{s['name']}" for s in found["scripts"] if s["active"]), None)
        table.replace_rows(rows, prefer=active)
        table.border_subtitle = "" if rows else "none: every message goes to INBOX (or Junk)"
        self._load_script()

    def _load_script(self) -> None:
        key = self.selected_key(self.query_one("#rule-scripts", DataTable))
        if key is None:
            self._show_rules("", "No scripts")
        elif key == ACCOUNT_RULES:
            self._show_rules(self._account_rules, "The account rules")
        else:
            name = key.removeprefix("script:")
            self.call_admin("rules_get", self._rules_user, name,
                            then=lambda text: self._show_rules(text, f"Script {name!r}"))

    def _show_rules(self, script: str, title: str) -> None:
        area = self.query_one("#rules-script", TextArea)
        area.text = script or "# No rules: every message goes to the INBOX (or Junk, by the spam filter)."
        area.border_title = f"{title} of {self._rules_user}"
        area.border_subtitle = ""
        if script:
            self.call_admin("rules_check", script, self._rules_user, then=self._show_rule_warnings)

    def _show_rule_warnings(self, result: dict) -> None:
        """A fileinto to a missing folder files into INBOX: say so under the script, with its line."""
        warnings = result.get("warnings", [])
        self.query_one("#rules-script", TextArea).border_subtitle = "; ".join(
            f"line {w['line']}: no folder \"{w['folder']}\", its mail stays in INBOX" for w in warnings)

    def _load_receipts(self) -> None:
        self._receipts_user = self.selected_key(self.query_one("#receipt-users", DataTable))
        if self._receipts_user is not None:
            self.call_admin("receipts", self._receipts_user, then=self._show_receipts)

    def _show_receipts(self, ledger: dict) -> None:
        now = self.app.now()
        sent = self.query_one("#receipts-sent", DataTable)
        sent.clear()
        for r in ledger["sent"]:
            sent.add_row(r["recipient"], r["delivery"] or "-", r["display"] or "-",
                         models.clip(r["subject"] or "-", 24), models.clock_time(r["sent"], now))
        sent.border_title = f"Their sent mail (read receipts: {ledger['policy']})"
        asked = self.query_one("#receipts-asked", DataTable)
        asked.clear()
        for r in ledger["requested"]:
            asked.add_row(r["from"], r["state"], models.clip(r["subject"] or "-", 24),
                          models.clock_time(r["received"], now))

    # -- actions -------------------------------------------------------------------------

    def _held(self) -> str | None:
        return self.selected_key(self.query_one("#quarantine", DataTable))

    def action_view(self) -> None:
        qid = self._held()
        if qid is not None:
            self.call_admin("quarantine_show", int(qid), then=lambda q: self.app.push_screen(TextScreen(
                f"Quarantined #{q['id']}: {q['reason']}", q["message"])))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "quarantine":
            self.action_view()

    def action_release(self) -> None:
        qid = self._held()
        if qid is not None:
            self.app.push_screen(
                ConfirmScreen(f"Deliver quarantined message {qid} to its recipients' INBOX, unfiltered?"),
                lambda yes: yes and self.call_admin(
                    "quarantine_release", int(qid), exclusive=False, then=lambda _: self.reload(),
                    done=lambda to: f"released {qid} to {', '.join(to)}"))

    def action_delete(self) -> None:
        qid = self._held()
        if qid is not None:
            self.app.push_screen(
                ConfirmScreen(f"Delete quarantined message {qid}? It cannot be undone."),
                lambda yes: yes and self.call_admin("quarantine_delete", int(qid), exclusive=False,
                                                    then=lambda _: self.reload(), done=f"deleted {qid}"))

    def action_edit_rules(self) -> None:
        """Edit the user's active script (with none active, the one saved becomes active)."""
        user = self._rules_user
        if user is None:
            return
        self.call_admin("rules_get", user, exclusive=False, then=lambda active: self.app.push_screen(
            RulesEditor(user, active), lambda saved: saved and self._load_rules()))

    def action_policy(self) -> None:
        user = self._receipts_user
        if user is None:
            return
        self.app.push_screen(FormScreen(
            f"Read receipts for {user}",
            "client: the mail program asks the user; auto: the server sends one when a message is first "
            "read; never: none are sent.",
            [Field("policy", "Policy (client, auto or never)", value="client",
                   validators=[one_of("client", "auto", "never")])],
            submit=lambda admin, v: admin.receipts_policy(user, v["policy"].strip())),
            lambda saved: saved and self._load_receipts())
