"""Sessions: the live connections, one session's commands as they happen, blocked addresses."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, RichLog

from appliance.tui import models
from appliance.tui.forms import Field, FormScreen, positive_number, required
from appliance.tui.screens.base import AdminScreen
from appliance.tui.table import Column, FitTable

# On 80 columns: who is connected where and for how long; the last command is in the follow pane.
COLUMNS = (Column("ID", "id"), Column("Listener", "listener"), Column("Peer", "peer"), Column("User", "user"),
           Column("State", "state"), Column("Last command", "last", narrow=False), Column("Time", "time"),
           Column("In/Out", "bytes", narrow=False), Column("TLS", "tls", narrow=False))


class SessionsScreen(AdminScreen):
    MODE = "sessions"
    WATCHES = frozenset({"session"})
    BINDINGS = [
        Binding("f", "follow", "Follow"),
        Binding("k", "kick", "Disconnect"),
        Binding("b", "block", "Block IP"),
        Binding("u", "unblock", "Unblock"),
    ]

    def __init__(self):
        super().__init__()
        self._sessions: dict[int, dict] = {}     # live sessions by id, as the last event described them
        self._following: int | None = None       # the session whose commands the follow pane shows
        # While a sessions() call is out, the events that arrive meanwhile (its answer may be older
        # than they are): id -> latest state, None once closed. None when no call is out.
        self._changes: dict[int, dict | None] | None = None

    def compose_body(self) -> ComposeResult:
        table = FitTable(COLUMNS, id="sessions", cursor_type="row", zebra_stripes=True)
        table.border_title = "Live sessions"
        yield table
        with Horizontal(id="sessions-bottom"):
            follow = RichLog(id="follow", max_lines=500, wrap=False, markup=False)
            follow.border_title = "Follow: f or Enter on a session"
            yield follow
            blocked = DataTable(id="blocked", cursor_type="row")
            blocked.border_title = "Failed logins / blocked"
            blocked.border_subtitle = "loopback, trusted: never blocked"
            yield blocked

    def on_mount(self) -> None:
        blocked = self.query_one("#blocked", DataTable)
        blocked.add_column("Address", key="ip")
        blocked.add_column("Fails", key="failures")
        blocked.add_column("Blocked", key="until")

    # -- data ----------------------------------------------------------------------------

    def reload(self) -> None:
        self._changes = {}
        self.call_admin("sessions", then=self._show_sessions)
        self.call_admin("blocked", then=self._show_blocked)

    def _show_sessions(self, sessions: list[dict]) -> None:
        table = self.query_one("#sessions", FitTable)
        self._sessions = {s["id"]: s for s in sessions}
        for sid, latest in (self._changes or {}).items():
            if latest is None:
                self._sessions.pop(sid, None)
            else:
                self._sessions[sid] = latest
        self._changes = None
        now = self.app.now()
        table.replace_rows([(str(s["id"]), models.session_cells(s, now)) for s in self._sessions.values()])

    def _show_blocked(self, entries: list[dict]) -> None:
        table = self.query_one("#blocked", DataTable)
        table.clear()
        now = self.app.now()
        for e in entries:
            if e["until"] > now:
                until = f"for {models.duration(e['until'] - now)}"
            else:
                until = "never (trusted)" if e.get("trusted") else "-"
            table.add_row(e["ip"], str(e["failures"]), until, key=e["ip"])

    def admin_events(self, events: list[dict]) -> None:
        table = self.query_one("#sessions", FitTable)
        now = self.app.now()
        for event in events:
            if event.get("type") != "session":
                continue
            s = event["session"]
            sid, key = s["id"], str(s["id"])
            if self._changes is not None:
                self._changes[sid] = None if event["kind"] == "closed" else s
            if event["kind"] == "closed":
                self._sessions.pop(sid, None)
                table.drop_row(key)
                if sid == self._following:
                    self.query_one("#follow", RichLog).write(f"{models.clock_time(now, now)} -- session closed")
            else:
                self._sessions[sid] = s
                table.set_row(key, models.session_cells(s, now))
            if event["kind"] == "command" and sid == self._following:
                self.query_one("#follow", RichLog).write(f"{models.clock_time(now, now)} {s['last_command']}")
        if self.watches(events):
            # Failed logins change the blocked list; there is no event of its own for that.
            self.call_admin("blocked", then=self._show_blocked)

    def tick(self) -> None:
        table = self.query_one("#sessions", FitTable)
        now = self.app.now()
        for sid, s in self._sessions.items():
            table.set_row(str(sid), models.session_cells(s, now))

    # -- actions -------------------------------------------------------------------------

    def _selected_session(self) -> int | None:
        key = self.selected_key(self.query_one("#sessions", DataTable))
        return int(key) if key is not None else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "sessions":
            self.action_follow()

    def action_follow(self) -> None:
        sid = self._selected_session()
        if sid is None:
            return
        self._following = sid
        s = self._sessions[sid]
        log = self.query_one("#follow", RichLog)
        log.clear()
        log.border_title = f"Follow #{sid} {s['listener']} {s['peer_ip']}"
        if s["last_command"]:
            log.write(f"{models.clock_time(s['last_active'], self.app.now())} {s['last_command']}")

    def action_kick(self) -> None:
        sid = self._selected_session()
        if sid is not None:
            self.call_admin("kick", sid, done=f"disconnected session #{sid}", exclusive=False)

    def action_block(self) -> None:
        sid = self._selected_session()
        peer = self._sessions[sid]["peer_ip"] if sid is not None else ""
        form = FormScreen(
            "Block an address",
            "Refuse logins from this address for a while. Failed logins block an address by themselves, "
            "except loopback (127.0.0.0/8, ::1) and [auth] trusted_networks, which are only slowed per "
            "account; a block set here applies to any address.",
            [Field("ip", "Address", value=peer, validators=[required("an IP address")]),
             Field("minutes", "Minutes", value="60", validators=[positive_number()])],
            submit=lambda admin, v: admin.block(v["ip"].strip(), float(v["minutes"]) * 60),
        )
        self.app.push_screen(form, lambda done: done and self.reload())

    def action_unblock(self) -> None:
        ip = self.selected_key(self.query_one("#blocked", DataTable))
        if ip is not None:
            self.call_admin("unblock", ip, done=f"unblocked {ip}", exclusive=False,
                            then=lambda _: self.call_admin("blocked", then=self._show_blocked))
