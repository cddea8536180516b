"""Turn bench/results/*.json into the ratio tables of bench/README.md.

Each results file holds one benchmark run against two targets, "postfix+dovecot" (the peer)
and "kotakpos", as lists of rows with the same `case` keys; a run with several `[server]
workers` counts also has "kotakpos workers=N", shown in tables of their own: against the peer,
and against one worker. For every shown metric the table
gives both figures and Kotakpos's advantage: peer ÷ Kotakpos for times and memory, Kotakpos ÷
peer for rates — so above 1.0 always means Kotakpos did better, in the same run.

    python -m bench.report          # rewrites the results section of bench/README.md
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
PEER, OURS = "postfix+dovecot", "kotakpos"
REFERENCE = "aiosmtpd+sqlite"  # bench/reference_smtp.py, in the SMTP results
REFERENCE_POP3 = "python+sqlite"  # bench/reference_pop3.py, in the POP3 results
WORKERS = f"{OURS} workers="  # followed by the count: Kotakpos with other [server] workers

# metric -> (column label, higher is better)
METRICS = {
    "msgs_per_s": ("msg/s", True),
    "p50_ms": ("p50 ms", False),
    "p99_ms": ("p99 ms", False),
    "e2e_s": ("end-to-end s", False),
    "startup_ms": ("login+STAT+LIST+UIDL ms", False),
    "retr_msgs_per_s": ("RETR msg/s", True),
    "retr_mb_per_s": ("RETR MB/s", True),
    "ms": ("ms", False),
    "mb_per_s": ("MB/s", True),
    "not_told": ("idlers never told", False),
    "push_p50_ms": ("push p50 ms", False),
    "push_p99_ms": ("push p99 ms", False),
    "server_pss_mb": ("server PSS MB", False),
    "server_rss_mb": ("server RSS MB (summed)", False),
    "relay_msgs_per_s": ("relayed msg/s", True),
    "server_cpu_ms": ("server CPU ms/msg", False),
    "write_avg_ms": ("write commands, average ms", False),
    "append_avg_ms": ("APPEND, average ms", False),
    "store_avg_ms": ("UID STORE, average ms", False),
    "expunge_avg_ms": ("UID EXPUNGE, average ms", False),
    "write_p99_ms": ("write commands, p99 ms", False),
    "protocol_errors": ("protocol errors", False),
}
TITLES = {
    "smtp": "SMTP accept rate and latency; end-to-end until IMAP STATUS shows every message (issue 3)",
    "pop3": "POP3 on a big maildrop (issue 4)",
    "pop3_reference": "The least a Python POP3 server over SQLite does, against Dovecot (bench/reference_pop3.py)",
    "imap": "IMAP on a big mailbox, and many IDLE clients (issue 5)",
    "sort": "IMAP SORT and THREAD on a big mailbox (issue 19)",
    "imap_write": "IMAP write commands, 10 mixed clients on one big mailbox (issue 20)",
    "relay": "Relay of queued 4 KiB messages to 10 destinations, aiosmtpd sinks (issue 6)",
    "smtp_reference": "Issue 3's reference, a plain aiosmtpd handler with one SQLite fsync per message, "
                      "against Postfix (bench/reference_smtp.py)",
    "mda_cost": "Cost of the filters: Kotakpos SMTP accept rate, filters off against on (issue 7, bench/mda_cost.py)",
}
# The issues' goals as minimum advantages: (benchmark, case prefix, metric) -> ratio.
GOALS = {
    ("smtp", "4KiB c=8", "msgs_per_s"): 2.0,
    ("smtp", "100KiB", "msgs_per_s"): 1.0,
    ("smtp", "", "e2e_s"): 4.0,
    ("pop3", "", "retr_msgs_per_s"): 1.0,
    ("pop3", "", "retr_mb_per_s"): 1.0,
    ("imap", "LOGIN+SELECT", "ms"): 1.0,
    ("imap", "UID FETCH", "ms"): 1.0,
    ("imap", "full-body", "mb_per_s"): 0.5,
    ("imap", "UID SEARCH", "ms"): 20.0,
    ("sort", "UID", "ms"): 1.0,
    ("imap_write", "", "write_avg_ms"): 0.5,  # at most twice Dovecot's average
}


# Absolute goals for Kotakpos's own figure: (benchmark, case prefix, metric) -> upper bound.
LIMITS = {
    ("imap", "1000 IDLE", "server_pss_mb"): 150,
    ("imap", "1000 IDLE", "push_p99_ms"): 100,
    ("imap_write", "", "protocol_errors"): 0,
}


def goal(benchmark: str, case: str, metric: str, peer, ours) -> str:
    for (b, prefix, m), bound in LIMITS.items():
        if b == benchmark and m == metric and case.startswith(prefix):
            if not isinstance(ours, (int, float)):
                return f"Kotakpos ≤ {bound}"
            return f"Kotakpos ≤ {bound} {'met' if ours <= bound else '**not met**'}"
    for (b, prefix, m), minimum in GOALS.items():
        if b == benchmark and m == metric and case.startswith(prefix):
            ratio = _ratio(metric, peer, ours)
            if ratio is None:
                return f"≥ {minimum}×"
            return f"≥ {minimum}× {'met' if ratio >= minimum else '**not met**'}"
    return ""


def _ratio(metric: str, peer, ours) -> float | None:
    if not isinstance(peer, (int, float)) or not isinstance(ours, (int, float)) or not peer or not ours:
        return None
    return ours / peer if METRICS[metric][1] else peer / ours


def advantage(metric: str, peer, ours) -> str:
    ratio = _ratio(metric, peer, ours)
    return "–" if ratio is None else f"{ratio:.2f}×"


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 10:
            return f"{value:,.1f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(result: dict) -> list[str]:
    targets = result["targets"]
    # Most results compare the peer with Kotakpos; some compare two Kotakpos set-ups and say so.
    base, subject = result.get("sides", [PEER, OURS])
    ours = "Kotakpos, 1 worker" if any(name.startswith(WORKERS) for name in targets) else "Kotakpos"
    labels = result.get("labels", ["Postfix/Dovecot", ours, "Kotakpos advantage"])
    peer_rows = {r["case"]: r for r in targets.get(base, [])}
    our_rows = {r["case"]: r for r in targets.get(subject, [])}
    title = result.get("title") or TITLES.get(result["benchmark"], result["benchmark"])
    lines = [f"### {title}", ""]
    lines.append(f"Run {result['started']} on {result['machine']}.")
    for note in result.get("notes", []):
        lines.append(f"{note}")
    lines += ["", f"| case | metric | {' | '.join(labels)} | goal |", "|---|---|---:|---:|---:|---|"]
    for case in list(peer_rows) + [c for c in our_rows if c not in peer_rows]:
        p, o = peer_rows.get(case, {}), our_rows.get(case, {})
        for metric in result.get("metrics", METRICS):
            label = METRICS[metric][0]
            if metric not in p and metric not in o:
                continue
            if p.get(metric) is None and o.get(metric) is None:
                continue
            lines.append(f"| {case} | {label} | {_fmt(p.get(metric))} | {_fmt(o.get(metric))} | "
                         f"{advantage(metric, p.get(metric), o.get(metric))} | "
                         f"{goal(result['benchmark'], case, metric, p.get(metric), o.get(metric)) if result.get('goals', True) else ''} |")
    errors = [(name, r["case"], r.get("first_error")) for name, rows in targets.items()
              if name in (base, subject) for r in rows if r.get("errors")]
    for name, case, err in errors:
        lines.append(f"\nErrors on {name}, {case}: {err}")
    return lines + [""]


def _from_mda_cost(result: dict) -> dict:
    """bench/mda_cost.py's rows (one list per filter configuration) as an off-against-on table."""
    off = result["rows"]["off"]
    base, with_filters = [], []
    for config, rows in result["rows"].items():
        if config == "off":
            continue
        for b, r in zip(off, rows):
            base.append({**b, "case": f"{b['case']}, {config}"})
            with_filters.append({**r, "case": f"{r['case']}, {config}"})
    return {"benchmark": "mda_cost", "started": result["started"], "machine": "this machine",
            "notes": [f"{result['messages_per_cell']} messages per cell; DNS checks off ([dns] resolver = none); "
                      "the last column is the speed with those filters relative to none (1.0: free)."],
            "metrics": ["msgs_per_s"], "sides": ["off", "on"], "labels": ["filters off", "filters on", "relative speed"],
            "targets": {"off": base, "on": with_filters}}


# benchmark -> (reference's key in its results, derived table's name, its label, note, metrics)
REFERENCES = {
    "smtp": (REFERENCE, "smtp_reference", "aiosmtpd + SQLite",
             "Same run and cells as the table above. Issue 3 says this reference reaches about 1.3× Postfix "
             "and sets its 2× goal from that; the last column is what it reaches here.",
             ["msgs_per_s", "p50_ms", "server_cpu_ms"]),
    "pop3": (REFERENCE_POP3, "pop3_reference", "Python + SQLite",
             "Same run and maildrops as the table above: thread per connection, texts read 32 at a time in one "
             "row and dot-stuffed, nothing else (no password check, limits, flags or deletions). It shows how "
             "far a Python server of Kotakpos's design gets on this machine.",
             ["retr_msgs_per_s", "server_cpu_ms"]),
}


def _reference(result: dict) -> dict | None:
    """A run's reference cells beside the peer's same cells, as a table of their own."""
    if result.get("benchmark") not in REFERENCES:
        return None
    name, benchmark, label, note, metrics = REFERENCES[result["benchmark"]]
    reference = result["targets"].get(name)
    if not reference:
        return None
    cases = {r["case"] for r in reference}
    return {"benchmark": benchmark, "started": result["started"], "machine": result["machine"],
            "notes": [note], "metrics": metrics, "sides": [PEER, name],
            "labels": ["Postfix/Dovecot", label, "reference advantage"],
            "targets": {PEER: [r for r in result["targets"][PEER] if r["case"] in cases], name: reference}}


# benchmark -> the metrics that say how a second worker changes Kotakpos
SCALING_METRICS = {
    "smtp": ["msgs_per_s", "p50_ms", "e2e_s", "server_cpu_ms"],
    "pop3": ["retr_msgs_per_s", "startup_ms", "server_cpu_ms"],
    "imap_write": ["write_avg_ms", "write_p99_ms", "server_cpu_ms"],
}


def _workers(result: dict) -> list[dict]:
    """For each other workers count in a run: its cells against the peer's (the same goals),
    and against one worker's."""
    derived = []
    for name in result.get("targets", {}):
        if not name.startswith(WORKERS):
            continue
        n = name[len(WORKERS):]
        benchmark = result["benchmark"]
        title = TITLES.get(benchmark, benchmark)
        derived.append({**result, "title": f"{title}, Kotakpos with `workers = {n}`", "sides": [PEER, name],
                        "labels": ["Postfix/Dovecot", f"Kotakpos, {n} workers", "Kotakpos advantage"]})
        if OURS in result["targets"]:
            derived.append({**result, "title": f"{title}: Kotakpos with `workers = {n}` against one worker",
                            "sides": [OURS, name], "goals": False, "notes": [],
                            "metrics": SCALING_METRICS.get(benchmark, list(METRICS)),
                            "labels": ["1 worker", f"{n} workers", f"{n} workers' advantage"]})
    return derived


def _process_label(side: str, name: str) -> str:
    """Kotakpos's processes are all "python": say which is which."""
    if side.startswith(OURS) and name.split("/")[-1].startswith("python"):
        return "workers" if "/" in name else ("supervisor" if side.startswith(WORKERS) else "server")
    return name


def cpu_table(result: dict) -> list[str]:
    """Server CPU per message split by process, every side of every case: where the time goes."""
    lines = []
    for side, rows in result["targets"].items():
        for row in rows:
            spent = row.get("server_cpu_ms_by_process")
            if not spent:
                continue
            parts = sorted(spent.items(), key=lambda kv: -kv[1])
            shown = " · ".join(f"{_process_label(side, n)} {_fmt(v)}" for n, v in parts if v >= 0.0005)
            lines.append(f"| {row['case']} | {side} | {_fmt(row.get('server_cpu_ms'))} | {shown} | "
                         f"{_fmt(row.get('client_cpu_ms'))} |")
    if not lines:
        return []
    title = TITLES.get(result["benchmark"], result["benchmark"])
    return [f"#### {title}: server CPU ms per message, by process", "",
            "Postfix's processes are under `master`, Dovecot's under `dovecot`; a tree's root also holds "
            "the time of its children that exited during the cell. The last column is the load generator's "
            "own CPU per message: it runs on the same cores.", "",
            "| case | side | total | by process | load generator |", "|---|---|---:|---|---:|", *lines, ""]


def render() -> str:
    order = ["smtp", "smtp_reference", "pop3", "pop3_reference", "imap", "imap_write", "sort", "relay", "mda_cost"]
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    results = [_from_mda_cost(r) if r.get("benchmark") == "mda_cost" else r for r in results]
    results += [t for r in results if (t := _reference(r))]
    results += [t for r in results if "targets" in r for t in _workers(r)]
    # Other benchmarks (store_deliver, startup) keep their own files and README sections.
    results = [r for r in results if "benchmark" in r and "targets" in r]
    results.sort(key=lambda r: order.index(r["benchmark"]) if r["benchmark"] in order else 99)
    lines = []
    for r in results:
        lines += table(r)
        if "sides" not in r:  # a run's own table, not one derived from it
            lines += cpu_table(r)
    return "\n".join(lines) if lines else "No results yet: run `python -m bench.run_all`."


def write_readme() -> None:
    text = README.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{render()}\n{END}{tail}")


if __name__ == "__main__":
    write_readme()
    print(f"wrote {README}")
