"""The Kotakpos TUI application: one screen per admin area, fed by live admin events.

Liveness: one long-lived thread worker (``link``) connects, subscribes to admin events
and posts them in batches; screens update from those events. When the server goes away
the worker says so and keeps reconnecting. Nothing polls: the once-a-second tick only
recomputes figures derived from the clock (durations, uptime, the sparkline window).
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import WorkerState, get_current_worker

from appliance.admin.api import AdminError
from appliance.tui.messages import EventsArrived, ServerConnected, ServerLost
from appliance.tui.models import LOG_LINES, LogBook, Traffic
from appliance.tui.screens.accounts import AccountsScreen
from appliance.tui.screens.base import SCREENS, AdminScreen
from appliance.tui.screens.dashboard import DashboardScreen
from appliance.tui.screens.filters import FiltersScreen
from appliance.tui.screens.log import LogScreen
from appliance.tui.screens.mailboxes import MailboxesScreen
from appliance.tui.screens.queue import QueueScreen
from appliance.tui.screens.sessions import SessionsScreen
from appliance.tui.table import WIDE

RETRY_INTERVAL = 1.0    # seconds between reconnection attempts
EVENT_BATCH = 1000      # at most this many events per EventsArrived message
BACKLOG = 20            # posted messages the UI may lag behind before the link worker waits


class KotakposApp(App):
    CSS_PATH = "kotakpos.tcss"
    TITLE = "Kotakpos"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]     # screen classes the stylesheet uses
    MODES = {
        "dashboard": DashboardScreen,
        "sessions": SessionsScreen,
        "queue": QueueScreen,
        "mailboxes": MailboxesScreen,
        "accounts": AccountsScreen,
        "filters": FiltersScreen,
        "log": LogScreen,
    }
    BINDINGS = [Binding(key, f"switch_mode('{mode}')", title, show=False) for mode, key, title in SCREENS] + [
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False),   # the top bar shows it
    ]

    connected = reactive(False)

    def __init__(self, connect: Callable[[], Any], where: str, release: Callable[[Any], None] | None = None,
                 now: Callable[[], float] = time.time):
        """``connect()`` returns an admin object (AdminAPI or AdminClient) or raises AdminError;
        ``release(admin)`` closes one that went away; ``now`` is the clock (fixed in snapshot tests)."""
        super().__init__()
        self._connect = connect
        self._release = release
        self.where = where
        self.now = now
        self.admin = None                   # the admin object while connected, else None
        self.lost_reason = ""               # why the last connection attempt failed
        self.traffic = Traffic()            # messages in/out per minute for the dashboard
        self.log_book = LogBook()           # recent server log lines for the log screen
        self.admin_screens: list[AdminScreen] = []   # every mounted admin screen (they register)

    def on_mount(self) -> None:
        try:  # SIGTERM (the server stops, the TUI's own process): give the terminal back as a quit does
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.exit)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (a test), or no Unix signals
        self.sub_title = self.where
        self.switch_mode("dashboard")
        self.link()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        self.traffic.advance(self.now())
        if isinstance(self.screen, AdminScreen):
            self.screen.tick()

    # -- the link to the server ------------------------------------------------------------

    @work(thread=True, exclusive=True, group="link", exit_on_error=False)
    def link(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                admin = self._connect()
                subscription = admin.subscribe()
            except (AdminError, OSError) as e:
                self.post_message(ServerLost(str(e)))
                worker.cancelled_event.wait(RETRY_INTERVAL)
                continue
            try:
                # Subscribed first, then the history: nothing falls between the two.
                self.post_message(ServerConnected(admin, admin.traffic(), admin.log_tail(LOG_LINES)))
                self._pump(worker, subscription)
            except (AdminError, OSError, ValueError) as e:
                self.post_message(ServerLost(str(e) or "the server went away"))
            finally:
                subscription.close()
                if self._release is not None:
                    self._release(admin)

    def _pump(self, worker, subscription) -> None:
        """Post events in batches until cancelled; raises when the server goes away."""
        while not worker.is_cancelled:
            event = subscription.get(timeout=0.5)
            if event is None:
                continue
            batch = [event]
            while len(batch) < EVENT_BATCH:
                event = subscription.get(timeout=0.01)
                if event is None:
                    break
                batch.append(event)
            self.post_message(EventsArrived(batch))
            # A UI that falls behind gets bigger batches rather than a growing queue.
            while self.message_queue_size > BACKLOG and not worker.is_cancelled:
                time.sleep(0.05)

    def on_worker_state_changed(self, event) -> None:
        # The link worker must not die quietly: say why and start it again.
        if event.worker.group == "link" and event.state == WorkerState.ERROR:
            self.post_message(ServerLost(f"{type(event.worker.error).__name__}: {event.worker.error}"))
            self.set_timer(RETRY_INTERVAL, self.link)

    def on_server_connected(self, message: ServerConnected) -> None:
        self.admin = message.admin
        self.traffic.load(message.traffic)
        self.log_book.load(message.log)
        self.lost_reason = ""
        self.connected = True
        self._all_stale()

    def on_server_lost(self, message: ServerLost) -> None:
        self.lost_reason = message.reason
        if self.connected:
            self.notify("Lost the server; reconnecting.", severity="error")
        self.admin = None
        self.connected = False
        # The Banner watches ``connected``; update its text also when only the reason changed.
        self.mutate_reactive(KotakposApp.connected)

    def on_events_arrived(self, message: EventsArrived) -> None:
        if not self.is_running:
            # Shutting down: the screens are losing their widgets while messages still arrive.
            return
        now = self.now()
        events = message.events
        overflowed = False
        for event in events:
            kind = event.get("type")
            if kind == "log":
                self.log_book.add(event)
            elif kind == "overflow":
                overflowed = True
            self.traffic.count(event, now)
        if overflowed:  # we missed events: every view must re-read its state
            self._all_stale()
            return
        for screen in self.admin_screens:
            # a screen still being composed has no tables yet; it reads the whole state when mounted
            if screen is self.screen and screen.is_mounted:
                screen.admin_events(events)
            elif screen.watches(events):
                screen.stale = True

    def _all_stale(self) -> None:
        for screen in self.admin_screens:
            screen.stale = True
        if isinstance(self.screen, AdminScreen):
            self.screen.reload_if_stale()

    def report_failure(self, what: str, error: BaseException | None) -> None:
        """Say why an admin call failed: its own message when it is an AdminError."""
        if isinstance(error, AdminError):
            self.notify(str(error), title=what, severity="error")
        elif isinstance(error, OSError):
            self.notify("the server did not answer", title=what, severity="error")
        else:
            self.notify(f"{type(error).__name__}: {error}", title=what, severity="error")

    # -- the command palette finds every screen and every action of every screen ------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if not isinstance(screen, AdminScreen):
            return      # a form or a viewer: its own keys are in its footer
        for mode, key, title in SCREENS:
            yield SystemCommand(f"Go to {title}", f"Show the {title} screen (key {key})",
                                lambda mode=mode: self.switch_mode(mode))
            actions: dict[str, tuple[str, list[str]]] = {}     # action -> (description, its keys)
            for binding in Binding.make_bindings(self.MODES[mode].BINDINGS):
                if binding.description:
                    actions.setdefault(binding.action, (binding.description, []))[1].append(
                        self.get_key_display(binding))
            for action, (description, keys) in actions.items():
                yield SystemCommand(f"{title}: {description}",
                                    f"{description} on the {title} screen (key {key}, then {' or '.join(keys)})",
                                    lambda mode=mode, action=action: self._run_on(mode, action))

    async def _run_on(self, mode: str, action: str) -> None:
        """Show ``mode``'s screen and run ``action`` there, as its key would."""
        await self.switch_mode(mode)
        self.screen.show_action(action)
        self.screen.run_when_loaded(action)


def attach(socket_path: Path) -> KotakposApp:
    """The TUI for a server reached over its admin socket (``kotakpos tui``)."""
    from appliance.admin.client import AdminClient
    return KotakposApp(lambda: AdminClient(socket_path), where=str(socket_path), release=lambda c: c.close())


def in_process(admin) -> KotakposApp:
    """The TUI over an admin API in this process (``kotakpos serve --tui``)."""
    return KotakposApp(lambda: admin, where="in-process")
