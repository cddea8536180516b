"""Log: the server's log as it is written, with a filter."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, RichLog

from appliance.tui import models
from appliance.tui.screens.base import AdminScreen

LEVEL_STYLES = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}


class LogScreen(AdminScreen):
    MODE = "log"
    WATCHES = frozenset({"log"})
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("ctrl+l", "clear_filter", "Clear filter"),
        Binding("escape", "focus_log", "To log", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="filter: words that must all appear (level, logger, pid or text); / to edit",
                    id="log-filter")
        log = RichLog(id="log", max_lines=models.LOG_LINES, wrap=True, markup=False)
        log.border_title = "Server log"
        yield log

    def on_mount(self) -> None:
        self.query_one("#log", RichLog).focus()

    def _line(self, line: dict) -> Text:
        when = models.clock_time(line["time"], self.app.now())
        # net[1234] for kotakpos.net in process 1234: with [server] workers, the supervisor or a worker
        source = f"{line['name'].partition('.')[2] or 'server'}[{line['pid']}]"
        return Text(f"{when} {line['level']:<7} {source:<12} {line['message']}", style=LEVEL_STYLES.get(line["level"], ""))

    def reload(self) -> None:
        log = self.query_one("#log", RichLog)
        log.clear()
        text = self.query_one("#log-filter", Input).value
        for line in self.app.log_book.matching(text):
            log.write(self._line(line))

    def admin_events(self, events: list[dict]) -> None:
        log = self.query_one("#log", RichLog)
        text = self.query_one("#log-filter", Input).value
        for event in events:
            if event.get("type") == "log" and models.log_matches(event, text):
                log.write(self._line(event))

    def on_input_changed(self, event: Input.Changed) -> None:
        self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_focus_log()

    def action_filter(self) -> None:
        self.query_one("#log-filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#log-filter", Input).value = ""

    def action_focus_log(self) -> None:
        self.query_one("#log", RichLog).focus()
