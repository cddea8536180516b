"""Queue: relay entries with retry, hold, release and delete, fast with 10,000 rows.

The table holds one page of the (filtered) queue: a terminal shows a screenful anyway,
and a table of ten thousand rows takes seconds to build. Reloads are diffs, so a queue
event touches only the rows that changed.
"""

from __future__ import annotations

import json

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from appliance.tui import models
from appliance.tui.forms import ConfirmScreen, TextScreen
from appliance.tui.screens.base import AdminScreen
from appliance.tui.table import Column, FitTable

# On 80 columns: which entry, its state and next try, and as much of the error as fits
# (the domain is in the recipient; Enter shows the whole entry).
COLUMNS = (Column("", "mark"), Column("ID", "id"), Column("Recipient", "recipient"),
           Column("Domain", "domain", narrow=False), Column("State", "state"), Column("Tries", "attempts"),
           Column("Next try", "next"), Column("Queued", "created", narrow=False), Column("Last error", "error"))
LIMIT = 10000           # rows fetched: the admin API's own bound
PAGE = 250              # rows in the table at once
REBUILD_OVER = 100      # with more removals than this, rebuilding the table is faster than removing rows


def entry_matches(q: dict, text: str) -> bool:
    """Every word of the filter appears in the recipient, sender, state or last error."""
    haystack = f"{q['recipient']} {q['sender']} {q['state']} {q['last_error']}".lower()
    return all(word in haystack for word in text.lower().split())


class QueueScreen(AdminScreen):
    MODE = "queue"
    WATCHES = frozenset({"queue"})
    BINDINGS = [
        Binding("m", "mark", "Mark"),
        Binding("space", "mark", "Mark", show=False),
        Binding("a", "mark_all", "Mark all"),
        Binding("r", "retry", "Retry"),
        Binding("h", "hold", "Hold"),
        Binding("e", "release", "Release"),
        Binding("b", "bounce", "Bounce"),
        Binding("x", "delete", "Delete"),
        Binding("i", "show", "Info", show=False),    # Enter on a row does the same
        Binding("slash", "filter", "Filter"),
        Binding("right_square_bracket", "page(1)", "Page"),
        Binding("left_square_bracket", "page(-1)", "Page back", show=False),
        Binding("escape", "focus_table", "To table", show=False),
    ]

    def __init__(self):
        super().__init__()
        self._entries: list[dict] = []          # the last fetch, in the admin API's order
        self._matching: list[dict] = []         # the entries that pass the filter
        self._page = 0                          # which PAGE of the matching entries the table shows
        self._marked: set[str] = set()          # ids marked with space or 'a'; actions apply to them

    def compose_body(self) -> ComposeResult:
        yield Static(id="queue-summary")
        yield Input(placeholder="filter: recipient, sender, state or error words; / to edit", id="queue-filter")
        yield FitTable(COLUMNS, id="queue", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#queue", FitTable).focus()

    # -- data ----------------------------------------------------------------------------

    def reload(self) -> None:
        self.call_admin("queue", LIMIT, then=self._show)

    def _show(self, entries: list[dict]) -> None:
        self._entries = entries
        self._marked &= {str(q["id"]) for q in entries}
        self._show_page()

    def _show_page(self) -> None:
        text = self.query_one("#queue-filter", Input).value
        self._matching = [q for q in self._entries if entry_matches(q, text)] if text.strip() else self._entries
        pages = max(1, -(-len(self._matching) // PAGE))
        self._page = min(self._page, pages - 1)
        now = self.app.now()
        shown = self._matching[self._page * PAGE:(self._page + 1) * PAGE]
        rows = {str(q["id"]): {"mark": self._mark(str(q["id"])), **models.queue_cells(q, now)} for q in shown}
        table = self.query_one("#queue", FitTable)
        gone = set(table.row_keys()) - rows.keys()
        if len(gone) > REBUILD_OVER:
            table.clear_rows()
        else:
            for key in gone:
                table.drop_row(key)
        for key, cells in rows.items():
            table.set_row(key, cells)
        self._show_summary(pages)

    def _mark(self, key: str) -> str:
        return "*" if key in self._marked else " "

    def _show_summary(self, pages: int) -> None:
        by_state: dict[str, int] = {}
        for q in self._entries:
            by_state[q["state"]] = by_state.get(q["state"], 0) + 1
        states = ", ".join(f"{n} {state}" for state, n in sorted(by_state.items()))
        oldest = min((q["created"] for q in self._entries), default=None)
        text = f"[b]{len(self._entries)}[/b] entries" + (f" ({states})" if states else ": the queue is empty")
        if oldest:
            text += f", oldest {models.duration(self.app.now() - oldest)}"
        if len(self._entries) >= LIMIT:
            text += f" (first {LIMIT})"
        if len(self._matching) != len(self._entries):
            text += f"; {len(self._matching)} match"
        if pages > 1:
            text += f"; page {self._page + 1}/{pages} ([ ])"
        if self._marked:
            text += f"; [b]{len(self._marked)} marked[/b]"
        self.query_one("#queue-summary", Static).update(text)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._page = 0
        self._show_page()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_focus_table()

    # -- actions -------------------------------------------------------------------------

    def _targets(self) -> list[int]:
        """The marked entries, or else the one under the cursor."""
        if self._marked:
            return sorted(int(k) for k in self._marked)
        key = self.selected_key(self.query_one("#queue", DataTable))
        return [int(key)] if key is not None else []

    def action_mark(self) -> None:
        table = self.query_one("#queue", FitTable)
        key = self.selected_key(table)
        if key is None:
            return
        self._marked ^= {key}
        self._show_page()
        table.action_cursor_down()

    def action_mark_all(self) -> None:
        """Mark every entry that passes the filter (on all pages); again to unmark them."""
        keys = {str(q["id"]) for q in self._matching}
        self._marked = self._marked - keys if keys <= self._marked else self._marked | keys
        self._show_page()

    def action_page(self, step: int) -> None:
        pages = max(1, -(-len(self._matching) // PAGE))
        self._page = (self._page + step) % pages     # ] after the last page comes back to the first
        self._show_page()
        self.query_one("#queue", DataTable).move_cursor(row=0)

    def action_filter(self) -> None:
        self.query_one("#queue-filter", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one("#queue", DataTable).focus()

    def _apply(self, method: str, verb: str) -> None:
        ids = self._targets()
        if ids:
            self._marked.clear()
            self.call_admin(method, ids, exclusive=False, done=lambda n: f"{verb} {n} of {len(ids)} entries")

    def action_retry(self) -> None:
        self._apply("queue_retry", "retried")

    def action_hold(self) -> None:
        self._apply("queue_hold", "held")

    def action_release(self) -> None:
        self._apply("queue_release", "released")

    def action_delete(self) -> None:
        ids = self._targets()
        if ids:
            question = f"Delete {len(ids)} queue entries? The recipients will not get the message."
            self.app.push_screen(ConfirmScreen(question), lambda yes: yes and self._apply("queue_delete", "deleted"))

    def action_bounce(self) -> None:
        ids = self._targets()
        if ids:
            question = f"Give up on {len(ids)} queue entries? Each sender gets a failure notice (bounce)."
            self.app.push_screen(ConfirmScreen(question), lambda yes: yes and self._apply("queue_bounce", "bounced"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_show()

    def action_show(self) -> None:
        key = self.selected_key(self.query_one("#queue", DataTable))
        if key is not None:
            self.call_admin("queue_entry", int(key), then=self._show_entry)

    def _show_entry(self, q: dict) -> None:
        now = self.app.now()
        dsn = json.loads(q["dsn"]) if q.get("dsn") else {}
        text = "\n".join([
            f"Queue entry {q['id']} ({q['state']})",
            f"From:         {q['sender'] or '<>'}",
            f"To:           {q['recipient']}",
            f"Destination:  {q['domain']}",
            f"Size:         {models.size(q['size'])}",
            f"Queued:       {models.clock_time(q['created'], now)} ({models.duration(now - q['created'])} ago)",
            f"Attempts:     {q['attempts']}",
            f"Next attempt: {models.clock_time(q['next_attempt'], now)}",
            f"DSN:          {json.dumps(dsn) if dsn else '-'}",
            "",
            "Last error:",
            q["last_error"] or "-",
        ])
        self.app.push_screen(TextScreen(f"Queue entry {q['id']}", text))
