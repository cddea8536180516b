"""Dashboard: listeners, uptime, live sessions by protocol, the worker processes, traffic
sparklines, queue, store."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Sparkline, Static

from appliance.tui import models
from appliance.tui.screens.base import AdminScreen
from appliance.tui.table import Column, FitTable

# The server's processes. CPU and memory change without events: they are asked for every
# WORKERS_REFRESH seconds while the dashboard is shown.
WORKER_COLUMNS = (
    Column("#", "index"),
    Column("PID", "pid"),
    Column("Up", "up"),
    Column("Sessions", "sessions", narrow_width=14),
    Column("CPU", "cpu"),
    Column("CPU time", "cpu_time", narrow=False),
    Column("RSS/PSS", "memory"),
    Column("Restarts, last exit", "restarts"),
)
WORKERS_REFRESH = 2.0


class DashboardScreen(AdminScreen):
    MODE = "dashboard"
    WATCHES = frozenset({"session", "queue", "mailbox", "accounts"})
    BINDINGS = [Binding("r", "reload", "Refresh")]
    RELOAD_DELAY = 1.0      # status() counts the whole store: at most once a second

    def __init__(self):
        super().__init__()
        self._status: dict | None = None        # the last status() answer
        self._fetched_at = 0.0                   # our clock when it arrived: uptime keeps counting from it
        self._workers: list[dict] = []          # the last workers() answer
        self._load = models.WorkerLoad()        # CPU percent between two workers() answers

    def compose_body(self) -> ComposeResult:
        yield Static(id="summary")
        with Horizontal(id="dash-top"):
            table = DataTable(id="listeners", cursor_type="none", zebra_stripes=True)
            table.border_title = "Listeners"
            yield table
            now = Static(id="now")
            now.border_title = "Now"
            yield now
        workers = FitTable(WORKER_COLUMNS, id="workers", cursor_type="none", zebra_stripes=True)
        workers.border_title = "Workers"
        yield workers
        with Vertical(id="traffic") as traffic:
            traffic.border_title = f"Messages per minute, last {models.TRAFFIC_MINUTES} min"
            with Horizontal(classes="spark-row"):
                yield Static(id="in-label", classes="spark-label")
                yield Sparkline([], id="in-spark")
            with Horizontal(classes="spark-row"):
                yield Static(id="out-label", classes="spark-label")
                yield Sparkline([], id="out-spark")

    def on_mount(self) -> None:
        self.query_one("#listeners", DataTable).add_columns("Listener", "Address", "TLS", "State")
        self.set_interval(WORKERS_REFRESH, self._refresh_workers)

    def _show_listeners(self, listeners: list[dict]) -> None:
        """One row per listener; when all share one host, it goes in the title and rows show ports."""
        table = self.query_one("#listeners", DataTable)
        hosts = {address.rpartition(":")[0] for listener in listeners for address in listener["addresses"]}
        one_host = hosts.pop() if len(hosts) == 1 else None
        table.border_title = f"Listeners on {one_host}" if one_host else "Listeners"
        table.clear(columns=True)
        table.add_columns("Listener", "Port" if one_host else "Address", "TLS", "State")
        for listener in listeners:
            addresses = [a.rpartition(":")[2] if one_host else a for a in listener["addresses"]]
            table.add_row(listener["name"], ", ".join(addresses),
                          "implicit" if listener["implicit_tls"] else "STARTTLS", listener["state"])

    def reload(self) -> None:
        self.call_admin("status", then=self._show_status)
        self._refresh_workers()

    def _refresh_workers(self) -> None:
        if self.app.admin is not None and self.is_current:
            self.call_admin("workers", False, then=self._show_workers)

    def _show_workers(self, workers: list[dict]) -> None:
        now = self.app.now()
        self._workers = workers
        self._load.forget_others({w["pid"] for w in workers if "pid" in w})
        table = self.query_one("#workers", FitTable)
        table.border_title = f"Workers: {len(workers)}" if len(workers) > 1 else "Server process"
        table.replace_rows([(str(w["index"]), models.worker_cells(w, self._load.percent(w, now) if "pid" in w else 0, now))
                            for w in workers])

    def action_reload(self) -> None:
        self.reload()

    def admin_events(self, events: list[dict]) -> None:
        super().admin_events(events)
        self._show_traffic()

    def tick(self) -> None:
        self._show_summary()
        self._show_traffic()

    def _show_status(self, status: dict) -> None:
        self._status = status
        self._fetched_at = self.app.now()
        self._show_listeners(status["listeners"])
        self._show_summary()
        self._show_now()
        self._show_traffic()

    def _show_summary(self) -> None:
        st = self._status
        if st is None:
            return
        uptime = st["uptime"] + self.app.now() - self._fetched_at
        self.query_one("#summary", Static).update(
            f"[b]Kotakpos {st['version']}[/b] on [b]{st['hostname']}[/b]  pid {st['pid']}  "
            f"up {models.duration(uptime)}  cert until {st['tls_expiry'][:10]}")

    def _show_now(self) -> None:
        st = self._status
        by_protocol = ", ".join(f"{p} {n}" for p, n in sorted(st["sessions_by_protocol"].items()))
        queue = st["queue"]
        states = ", ".join(f"{n} {state}" for state, n in sorted(queue["by_state"].items()))
        oldest = f", oldest {models.duration(self.app.now() - queue['oldest'])}" if queue["oldest"] else ""
        counts = st["counts"]
        today = st["today"]
        filter_text = f"{today.get('mda.spam', 0)} spam, {today.get('mda.virus', 0)} virus today"
        lines = [
            f"[b]Sessions[/b]  {st['sessions']}" + (f" ({by_protocol})" if by_protocol else ""),
            f"[b]Queue[/b]     {queue['depth']}{oldest}",
            f"          {states}" if states else "",
            f"[b]Store[/b]     {counts['messages']} msgs, {models.size(counts['bytes'])}",
            f"[b]Users[/b]     {counts['users']} in {counts['domains']} domains",
            f"[b]Disk free[/b] {models.size(st['disk_free'])}",
            f"[b]Blocked[/b]   {st['blocked']} addresses",
            f"[b]Filtered[/b]  {filter_text}",
        ]
        self.query_one("#now", Static).update("\n".join(line for line in lines if line))

    def _show_traffic(self) -> None:
        traffic = self.app.traffic
        for direction, data in (("in", traffic.incoming), ("out", traffic.outgoing)):
            self.query_one(f"#{direction}-spark", Sparkline).data = list(data)
            self.query_one(f"#{direction}-label", Static).update(
                f"{direction:<3} {data[-1]:>5}/min  {sum(data):>6} total")
