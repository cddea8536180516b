"""Filters and receipts: what the server's filtering has done, from the figures that exist.

The filter pipeline (MDA: quarantine, spam and virus filters, rules, the receipt ledger)
is not part of this server yet; this screen shows the quarantine count and any filter
counters the server reports, and says plainly what is not there.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from appliance.tui.screens.base import AdminScreen

NOT_YET = ("This server has no filter pipeline yet: quarantine actions, spam and virus statistics, "
           "per-user rules and the receipt ledger appear here once it does.")


class FiltersScreen(AdminScreen):
    MODE = "filters"
    BINDINGS = [Binding("r", "reload", "Refresh")]

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="filters"):
            yield Static(id="filter-figures")
            yield Static(NOT_YET, id="filter-note")

    def on_screen_suspend(self) -> None:
        # Counters change without events of their own: read them again whenever shown.
        self.stale = True

    def reload(self) -> None:
        self.call_admin("status", then=self._show)

    def action_reload(self) -> None:
        self.reload()

    def _show(self, status: dict) -> None:
        counters = {k: v for k, v in status["stats"].items() if k.startswith(("spam", "virus", "filter", "quarant"))}
        lines = [f"[b]Quarantined messages[/b]  {status['counts']['quarantine']}", "", "[b]Filter counters[/b]"]
        lines += [f"  {name:<24} {value}" for name, value in sorted(counters.items())] or ["  none reported"]
        self.query_one("#filter-figures", Static).update("\n".join(lines))
