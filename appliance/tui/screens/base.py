"""What every admin screen shares: the top bar, the 'server lost' banner, the footer,
admin calls in thread workers, and reloading on events instead of polling."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import WorkerState

from appliance.admin.api import AdminError
from appliance.tui.messages import AdminReplied
from appliance.tui.table import FitTable, cursor_key

# (mode name, key, title), in the order of the top bar.
SCREENS = (
    ("dashboard", "1", "Dash"),
    ("sessions", "2", "Sessions"),
    ("queue", "3", "Queue"),
    ("mailboxes", "4", "Mail"),
    ("accounts", "5", "Accounts"),
    ("filters", "6", "Filters"),
    ("log", "7", "Log"),
)

RELOAD_DELAY = 0.3      # seconds: a burst of events causes one reload, not one per event


class TopBar(Horizontal):
    """The screens with their keys (the current one highlighted), the command palette and
    quit: the footer below is left to the current screen's own actions."""

    def __init__(self, current: str):
        super().__init__(id="topbar")
        self.current = current

    def compose(self) -> ComposeResult:
        # Single spaces between tabs: with the palette and quit keys it all fits in 80 columns.
        yield Static("".join(f"[reverse b] {key} {title} [/]" if mode == self.current else f" [b]{key}[/b] {title}"
                             for mode, key, title in SCREENS), id="tabs")
        yield Static("[b]^p[/b] Palette [b]^q[/b] Quit", id="global-keys")


class Banner(Static):
    """Shown only while the server is unreachable."""

    def __init__(self):
        super().__init__(id="banner")

    def on_mount(self) -> None:
        self.watch(self.app, "connected", self._show)

    def _show(self, connected: bool) -> None:
        self.display = not connected
        if not connected:
            reason = self.app.lost_reason or "connecting"
            self.update(f"SERVER UNREACHABLE, reconnecting (figures may be stale): {reason}")


class AdminScreen(Screen):
    """A screen that shows server state. Subclasses set MODE and WATCHES and write
    ``compose_body``, ``reload`` (fetch everything) and, for fine-grained updates,
    ``admin_events``."""

    MODE = ""
    WATCHES: frozenset[str] = frozenset()   # event types that make this screen's data stale
    RELOAD_DELAY = RELOAD_DELAY

    def __init__(self):
        super().__init__()
        self.stale = True                   # reload when next shown or connected
        self._reload_timer = None
        self._after_load: list[str] = []    # actions to run once the data being fetched is shown

    def compose(self) -> ComposeResult:
        yield TopBar(self.MODE)
        yield Banner()
        yield from self.compose_body()
        yield Footer(compact=True, show_command_palette=False)

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError

    def on_mount(self) -> None:
        self.app.admin_screens.append(self)

    def on_unmount(self) -> None:
        if self in self.app.admin_screens:
            self.app.admin_screens.remove(self)

    def on_screen_resume(self) -> None:
        self.reload_if_stale()

    def on_resize(self, event) -> None:
        for table in self.query(FitTable):
            table.fit(event.size.width)

    def reload_if_stale(self) -> None:
        if self.stale and self.app.admin is not None:
            self.stale = False
            self.reload()

    # -- what subclasses fill in -------------------------------------------------------

    def reload(self) -> None:
        """Fetch everything this screen shows (in workers)."""

    def watches(self, events: list[dict]) -> bool:
        return any(e.get("type") in self.WATCHES for e in events)

    def admin_events(self, events: list[dict]) -> None:
        """Live events while this screen is shown; by default a debounced reload."""
        if self.watches(events):
            self.reload_soon()

    def tick(self) -> None:
        """Once a second while shown: refresh figures derived from the clock."""

    def show_action(self, action: str) -> None:
        """Bring up the part of the screen that ``action`` works on (a tab): the command
        palette runs any action of any screen, not only those the footer shows."""

    def run_when_loaded(self, action: str) -> None:
        """Run ``action`` once the data being fetched is shown, at once when nothing is
        (from the palette, a screen may just have started reading what its action needs)."""
        self.reload_if_stale()
        self._after_load.append(action)
        self._run_after_load()

    def _run_after_load(self) -> None:
        # A reply's ``then`` may fetch more (a user's folders, then their messages): the
        # actions wait until no fetch of this screen is left.
        fetching = any(w.node is self and w.group != "action" and not w.is_finished for w in self.app.workers)
        if self._after_load and not fetching:
            actions, self._after_load = self._after_load, []
            for action in actions:
                self.call_later(self.run_action, action)

    # -- helpers -----------------------------------------------------------------------

    def reload_soon(self) -> None:
        if self._reload_timer is None:
            self._reload_timer = self.set_timer(self.RELOAD_DELAY, self._reload_now)

    def _reload_now(self) -> None:
        self._reload_timer = None
        if self.app.admin is not None:
            self.reload()

    def call_admin(self, method: str, *args, then=None, done=None, exclusive: bool = True) -> None:
        """Call an admin method in a thread worker; ``then(result)`` runs on the UI thread.

        ``done`` is a notification (text, or a function of the result). Calls of the same
        method are exclusive by default: a newer reload replaces an older one.
        """
        admin = self.app.admin

        def job() -> None:
            if admin is None:
                raise AdminError("not connected to the server")
            result = getattr(admin, method)(*args)
            self.post_message(AdminReplied(method, result, then, done))

        self.run_worker(job, name=method, group=method if exclusive else "action", thread=True,
                        exclusive=exclusive, exit_on_error=False)

    def on_admin_replied(self, message: AdminReplied) -> None:
        if message.then is not None:
            message.then(message.result)
        if message.done:
            self.notify(message.done(message.result) if callable(message.done) else message.done)

    def on_worker_state_changed(self, event) -> None:
        if event.state == WorkerState.ERROR:
            self.app.report_failure(event.worker.name, event.worker.error)
        if event.worker.is_finished:
            self._run_after_load()

    def selected_key(self, table) -> str | None:
        """The row key under a DataTable's cursor, or None when the table is empty."""
        return cursor_key(table)
