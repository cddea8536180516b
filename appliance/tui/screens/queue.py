"""Queue: relay entries with retry, hold, release and delete, fast with 10,000 rows.

Reloads are diffs: the worker fetches and formats the rows, the UI thread touches only
the rows that changed, so a queue event costs little however long the queue is.
"""

from __future__ import annotations

import json

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from appliance.tui import models
from appliance.tui.forms import ConfirmScreen, TextScreen
from appliance.tui.screens.base import AdminScreen

COLUMNS = (("", "mark"), ("ID", "id"), ("Recipient", "recipient"), ("Domain", "domain"), ("State", "state"),
           ("Tries", "attempts"), ("Next try", "next"), ("Queued", "created"), ("Last error", "error"))
LIMIT = 10000           # rows fetched: the admin API's own bound
REBUILD_OVER = 200      # with more removals than this, rebuilding the table is faster than removing rows


class QueueScreen(AdminScreen):
    MODE = "queue"
    WATCHES = frozenset({"queue"})
    BINDINGS = [
        Binding("space", "mark", "Mark"),
        Binding("r", "retry", "Retry now"),
        Binding("h", "hold", "Hold"),
        Binding("e", "release", "Release"),
        Binding("x", "delete", "Delete"),
        Binding("enter", "show", "Details"),
    ]

    def __init__(self):
        super().__init__()
        self._rows: dict[str, tuple] = {}       # queue id -> the cells shown (without the mark)
        self._marked: set[str] = set()          # ids marked with space; actions apply to them
        self._entries: list[dict] = []          # the last fetch, for the summary line

    def compose_body(self) -> ComposeResult:
        yield Static(id="queue-summary")
        table = DataTable(id="queue", cursor_type="row", zebra_stripes=True)
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#queue", DataTable)
        for label, key in COLUMNS:
            table.add_column(label, key=key)

    # -- data ----------------------------------------------------------------------------

    def reload(self) -> None:
        self.call_admin("queue", LIMIT, then=self._show)

    def _show(self, entries: list[dict]) -> None:
        now = self.app.now()
        rows = {str(q["id"]): models.queue_cells(q, now)[1:] for q in entries}
        table = self.query_one("#queue", DataTable)
        gone = self._rows.keys() - rows.keys()
        if len(gone) > REBUILD_OVER:
            table.clear()
            self._rows = {}
        else:
            for key in gone:
                table.remove_row(key)
                self._rows.pop(key)
        new = []
        for key, cells in rows.items():
            old = self._rows.get(key)
            if old is None:
                new.append((key, cells))
            elif old != cells:
                for (_, column), before, after in zip(COLUMNS[1:], old, cells):
                    if before != after:
                        table.update_cell(key, column, after)
        for key, cells in new:
            table.add_row(self._mark(key), *cells, key=key)
        self._rows = rows
        self._marked &= rows.keys()
        self._entries = entries
        self._show_summary()

    def _mark(self, key: str) -> str:
        return "*" if key in self._marked else " "

    def _show_summary(self) -> None:
        by_state: dict[str, int] = {}
        for q in self._entries:
            by_state[q["state"]] = by_state.get(q["state"], 0) + 1
        states = ", ".join(f"{n} {state}" for state, n in sorted(by_state.items()))
        oldest = min((q["created"] for q in self._entries), default=None)
        text = f"[b]{len(self._entries)}[/b] entries" + (f" ({states})" if states else " - the queue is empty")
        if oldest:
            text += f", oldest {models.duration(self.app.now() - oldest)}"
        if len(self._entries) >= LIMIT:
            text += f"; showing the first {LIMIT}"
        if self._marked:
            text += f"; [b]{len(self._marked)} marked[/b]"
        self.query_one("#queue-summary", Static).update(text)

    # -- actions -------------------------------------------------------------------------

    def _targets(self) -> list[int]:
        """The marked entries, or else the one under the cursor."""
        if self._marked:
            return sorted(int(k) for k in self._marked)
        key = self.selected_key(self.query_one("#queue", DataTable))
        return [int(key)] if key is not None else []

    def action_mark(self) -> None:
        table = self.query_one("#queue", DataTable)
        key = self.selected_key(table)
        if key is None:
            return
        self._marked ^= {key}
        table.update_cell(key, "mark", self._mark(key))
        table.action_cursor_down()
        self._show_summary()

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
