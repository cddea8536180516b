"""View models and formatting for the TUI: plain data, no widgets.

Everything here works on the JSON-friendly dicts the admin API returns, so it can be
tested without a terminal and behaves the same in-process and over the socket.
"""

from __future__ import annotations

import collections
import re
import time
from dataclasses import dataclass, field

from appliance.admin.api import traffic_of

TRAFFIC_MINUTES = 30    # how many minutes the dashboard's sparklines span
LOG_LINES = 2000        # log lines kept for the log view (the server keeps as many)


def duration(seconds: float) -> str:
    """A short age or duration: 42s, 3m05s, 2h10m, 4d03h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def size(n: int | float | None) -> str:
    """Bytes for people, at most 5 characters: 512B, 9.5k, 12k, 312M, 1.2G."""
    n = float(n or 0)
    for unit in ("B", "k", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" or n >= 10 else f"{n:.1f}{unit}"
        n /= 1024
    raise AssertionError("unreachable")


def quota_text(used: int, quota: int) -> str:
    """Usage against quota: '312M/1.0G 30%', or '48M' without a quota."""
    if not quota:
        return size(used)
    return f"{size(used)}/{size(quota)} {100 * used // quota}%"


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


# one "Name <address>" or '"Quoted, name" <address>', as the admin API gives a From
_ONE_NAMED = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^"<>,]*?))\s*<([^<>]*)>\s*\Z')


def sender(from_: str, width: int = 24) -> str:
    """The name in a From header if it has one ('Bob' for 'Bob <bob@example.org>'), else the
    address; a name holding an "@" could pose as another sender, so the address is shown."""
    m = _ONE_NAMED.match(from_)
    if m is None:
        return clip(from_.strip(), width) or "-"
    name = re.sub(r"\\(.)", r"\1", m.group(1)) if m.group(1) is not None else m.group(2)
    return clip(name if name.strip() and "@" not in name else m.group(3), width) or "-"


def clock_time(when: float, now: float) -> str:
    """A time of day for times within the last day, a date otherwise."""
    if not when:
        return "-"
    fmt = "%H:%M:%S" if abs(now - when) < 86400 else "%Y-%m-%d"
    return time.strftime(fmt, time.localtime(when))


@dataclass
class Traffic:
    """Messages in and out per minute, for the sparklines.

    Starts from the server's history (``AdminAPI.traffic``) and then counts live events
    with the same rule (``traffic_of``), so it needs no polling.
    """

    minute: int = 0                                 # the unix minute of the last bucket
    incoming: list[int] = field(default_factory=lambda: [0] * TRAFFIC_MINUTES)
    outgoing: list[int] = field(default_factory=lambda: [0] * TRAFFIC_MINUTES)

    def load(self, history: dict) -> None:
        self.minute = history["minute"]
        self.incoming = ([0] * TRAFFIC_MINUTES + list(history["in"]))[-TRAFFIC_MINUTES:]
        self.outgoing = ([0] * TRAFFIC_MINUTES + list(history["out"]))[-TRAFFIC_MINUTES:]

    def advance(self, now: float) -> None:
        """Shift the window so that its last bucket is the current minute."""
        minute = int(now // 60)
        if not self.minute:
            self.minute = minute
        steps = min(minute - self.minute, TRAFFIC_MINUTES)
        if steps > 0:
            self.incoming = self.incoming[steps:] + [0] * steps
            self.outgoing = self.outgoing[steps:] + [0] * steps
        self.minute = max(self.minute, minute)

    def count(self, event: dict, now: float) -> None:
        n_in, n_out = traffic_of(event)
        if n_in or n_out:
            self.advance(now)
            self.incoming[-1] += n_in
            self.outgoing[-1] += n_out


class LogBook:
    """The newest server log lines, filled from ``log_tail`` and then from log events."""

    def __init__(self, capacity: int = LOG_LINES):
        self.lines: collections.deque[dict] = collections.deque(maxlen=capacity)

    def load(self, lines: list[dict]) -> None:
        self.lines.clear()
        self.lines.extend(lines)

    def add(self, line: dict) -> None:
        self.lines.append(line)

    def matching(self, text: str) -> list[dict]:
        return [line for line in self.lines if log_matches(line, text)]


def log_matches(line: dict, text: str) -> bool:
    """Case-insensitive: every word of the filter appears in the level, logger, pid or message."""
    haystack = f"{line['level']} {line['name']} {line['pid']} {line['message']}".lower()
    return all(word in haystack for word in text.lower().split())


def session_cells(s: dict, now: float) -> dict[str, str]:
    """One row of the sessions table, by column key."""
    return {"id": str(s["id"]), "listener": s["listener"], "peer": f"{s['peer_ip']}:{s['peer_port']}",
            "user": s["user"] or "-", "state": s["state"], "last": s["last_command"],
            "time": duration(now - s["started"]), "bytes": f"{size(s['bytes_in'])}/{size(s['bytes_out'])}",
            "tls": s["tls"] or "-"}


def queue_cells(q: dict, now: float) -> dict[str, str]:
    """One row of the queue table, by column key. Times are absolute so 10,000 rows need no ticking."""
    state = q["state"]
    if state == "held":
        next_try = "held"
    else:
        next_try = "now" if q["next_attempt"] <= now else clock_time(q["next_attempt"], now)
    return {"id": str(q["id"]), "recipient": q["recipient"], "domain": q["domain"], "state": state,
            "attempts": str(q["attempts"]), "next": next_try, "created": clock_time(q["created"], now),
            "error": (q["last_error"] or "-").replace("\n", " ")}


def mail_date(when: float, now: float) -> str:
    """A message's date, always with the day: 'Nov 02 10:00' this year, '2025-11-02' before."""
    if not when:
        return "-"
    fmt = "%b %d %H:%M" if time.localtime(when).tm_year == time.localtime(now).tm_year else "%Y-%m-%d"
    return time.strftime(fmt, time.localtime(when))


def by_protocol(counts: dict[str, int]) -> str:
    """Sessions by protocol, most first: 'imap 12 smtp 3', or '-' for none."""
    return " ".join(f"{p} {n}" for p, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))) or "-"


def last_exit(exit_: dict | None, now: float) -> str:
    """How a worker's predecessor ended, short: 'SIGKILL 3m05s ago', 'status 1 2h10m ago', '-'."""
    if not exit_:
        return "-"
    how = exit_["signal"] or f"status {exit_['status']}"
    return f"{how} {duration(now - exit_['at'])} ago"


class WorkerLoad:
    """Each worker's CPU use in percent of one core, between two of its reports.

    A report has the CPU seconds since the worker started; the first one seen of a worker
    gives its average since then, the next ones the use since the one before.
    """

    def __init__(self):
        self._seen: dict[int, tuple[float, float, float]] = {}     # pid -> (cpu seconds, when, percent)

    def percent(self, worker: dict, now: float) -> float:
        pid, cpu = worker["pid"], worker["cpu_seconds"]
        before_cpu, before, before_percent = self._seen.get(pid, (0.0, worker["started"], 0.0))
        if now <= before:  # no time has passed: nothing new to say
            return before_percent
        percent = 100 * max(0.0, cpu - before_cpu) / (now - before)
        self._seen[pid] = (cpu, now, percent)
        return percent

    def forget_others(self, pids: set[int]) -> None:
        """Keep only these workers (the others ended)."""
        self._seen = {pid: seen for pid, seen in self._seen.items() if pid in pids}


def worker_cells(w: dict, cpu_percent: float, now: float) -> dict[str, str]:
    """One row of the workers table, by column key (a worker that did not answer: its index only)."""
    if "pid" not in w:
        return {"index": str(w["index"]), "pid": "-", "up": "-", "sessions": "not answering (restarting?)",
                "cpu": "", "cpu_time": "", "memory": "", "restarts": ""}
    restarts = str(w["restarts"]) + (f", {last_exit(w['last_exit'], now)}" if w["last_exit"] else "")
    return {"index": str(w["index"]), "pid": str(w["pid"]), "up": duration(now - w["started"]),
            "sessions": by_protocol(w["sessions_by_protocol"]), "cpu": f"{cpu_percent:.0f}%",
            "cpu_time": f"{w['cpu_seconds']:.1f}s" if w["cpu_seconds"] < 60 else duration(w["cpu_seconds"]), "memory": f"{size(w['rss'])}/{size(w['pss'])}",
            "restarts": restarts}
