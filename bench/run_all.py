"""Run every comparison, Kotakpos against Postfix + Dovecot, in one run on this machine.

For each benchmark both sides are started fresh in temporary folders on loopback, loaded with
the same data, and driven by the same generator; cells alternate between the two sides, so
that a machine getting slower or faster during the run affects both alike. Results go to
bench/results/<benchmark>.json and the tables in bench/README.md (bench/report.py).

    python -m bench.run_all                 # everything (about 15 minutes on 2 cores)
    python -m bench.run_all --quick         # smaller loads, a couple of minutes
    python -m bench.run_all --only smtp,imap
    python -m bench.run_all --only sort     # SORT and THREAD on one big mailbox
    python -m bench.run_all --only imap_write   # 10 clients writing to one big mailbox
    python -m bench.run_all --only smtp,pop3 --workers 1,2   # Kotakpos with 1 and with 2 workers

With several `--workers` counts, each is its own Kotakpos instance (`[server] workers`), and
every cell runs the peer and then each of them in turn; the results name them "kotakpos"
(one worker, the default) and "kotakpos workers=N".

A Kotakpos protocol that has not landed yet (its listener answers "service not available")
is skipped and named in the results' notes; the peer's figures are still measured.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import socket
import subprocess
import time

from bench import imap_load, mda_cost, pop3_load, relay_load, report, smtp_load
from bench.kotakpos import Kotakpos
from bench.messages import THREAD_LENGTH, mailbox_messages
from bench.peers import Dovecot, Postfix, install
from bench.reference_pop3 import ReferencePop3
from bench.reference_smtp import ReferenceSmtp
from bench.wire import Target

PEER, OURS, REFERENCE, REFERENCE_POP3 = report.PEER, report.OURS, report.REFERENCE, report.REFERENCE_POP3
PASSWORD = "bench-pw-1"
E2E_USER = "e2e@bench.test"
BOXES = [f"box{i}@bench.test" for i in range(8)]      # 10,000-message mailboxes (POP3, IMAP)
IDLERS = [f"idle{i}@bench.test" for i in range(10)]   # empty mailboxes for the IDLE clients
ALL_USERS = [(a, PASSWORD) for a in [E2E_USER, *BOXES, *IDLERS]]


def machine() -> str:
    def version(pkg: str) -> str:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
        return out.stdout.strip() or "?"
    return (f"{os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}, "
            f"Postfix {version('postfix')}, Dovecot {version('dovecot-core')}")


def speaks(port: int, ok_prefixes: tuple[bytes, ...]) -> bool:
    """Whether a Kotakpos listener already speaks its protocol (not the placeholder greeting)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            return s.recv(512).startswith(ok_prefixes)
    except OSError:
        return False


def save(benchmark: str, targets: dict, notes: list[str], started: str) -> None:
    path = report.RESULTS / f"{benchmark}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"benchmark": benchmark, "started": started, "machine": machine(),
                                "notes": notes, "targets": targets}, indent=2) + "\n")
    print(f"wrote {path}", flush=True)


def ours_name(workers: int) -> str:
    """The results' name of Kotakpos with that many workers; the default, 1, keeps the plain name."""
    return OURS if workers == 1 else f"{OURS} workers={workers}"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# -- SMTP ---------------------------------------------------------------------------------------
REFERENCE_CLIENTS = 8  # the cells of issue 3's accept-rate goals, where its reference is run too


def bench_smtp(args) -> None:
    started, notes = now(), []
    counts = {"4KiB": 100, "100KiB": 40} if args.quick else {"4KiB": 500, "100KiB": 200}
    rows = {PEER: [], REFERENCE: [], **{ours_name(n): [] for n in args.workers}}
    with Dovecot(ALL_USERS) as d, Postfix(users=[E2E_USER], lmtp=("127.0.0.1", d.lmtp_port)) as p, \
            contextlib.ExitStack() as servers, ReferenceSmtp() as r:
        peer = Target(PEER, smtp_port=p.smtp_port, imap_port=d.imap_port, users=ALL_USERS, cpu_roots=(p.pid, d.pid))
        reference = Target(REFERENCE, smtp_port=r.port, users=ALL_USERS, cpu_roots=(r.pid,))
        sides = [peer]
        for n in args.workers:
            k = servers.enter_context(Kotakpos(ALL_USERS, workers=n))
            ours = Target(ours_name(n), smtp_port=k.port("smtp"), imap_port=k.port("imap"), users=ALL_USERS,
                          cpu_roots=(k.pid,))
            if not speaks(k.port("smtp"), (b"220",)):
                notes.append("Kotakpos SMTP not available yet: skipped.")
                continue
            if not speaks(k.port("imap"), (b"* OK",)):
                notes.append("Kotakpos IMAP not available yet: no end-to-end figure for Kotakpos.")
                ours.imap_port = None
            sides.append(ours)
        for t in sides + [reference]:  # warm-up: connections, caches, first deliveries
            smtp_load.run_cell(t, 4096, 1, True, 20, 30, E2E_USER)
        for size in ("4KiB", "100KiB"):
            for clients in args.clients:
                for reuse in (True, False):
                    case = f"{size} c={clients} {'reuse' if reuse else 'new-conn'}"
                    for t in sides + ([reference] if clients == REFERENCE_CLIENTS else []):
                        row = smtp_load.run_cell(t, smtp_load.SIZES[size], clients, reuse, counts[size],
                                                 args.time_limit, E2E_USER)
                        rows[t.name].append({"case": case, **row})
                        print(f"  smtp {t.name:26} {case:22} {row['msgs_per_s']:8} msg/s  p50 {row['p50_ms']} ms"
                              f"  p99 {row['p99_ms']} ms  e2e {row.get('e2e_s')} s"
                              f"  cpu {row.get('server_cpu_ms')} ms/msg  errors {row['errors']}", flush=True)
    notes.append(f"{counts['4KiB']} messages of 4 KiB, {counts['100KiB']} of 100 KiB per cell (at most "
                 f"{args.time_limit:.0f} s); latency from MAIL (or connect, new-conn) to the 250 after DATA; "
                 "end-to-end from the first MAIL until IMAP STATUS shows every accepted message "
                 "(Postfix queue → LMTP → Dovecot, against Kotakpos's own delivery); server CPU is the "
                 "servers' CPU time per accepted message over that same span (Postfix's and Dovecot's "
                 "processes, against all of Kotakpos's), on a machine with "
                 f"{os.cpu_count()} CPUs shared with the load generator.")
    save("smtp", rows, notes, started)


def best(rows: list[dict], metric: str, higher_is_better: bool) -> dict:
    """The least disturbed of several runs of one row (others on the machine only slow things)."""
    measured = [r for r in rows if r.get(metric) is not None] or rows
    return (max if higher_is_better else min)(measured, key=lambda r: r.get(metric) or 0)


# -- POP3 and IMAP on big mailboxes ---------------------------------------------------------------
def pop3_rows(args, sides: list[Target], boxes: list[str], size: int) -> dict:
    """Every side's POP3 rows, 1 user and all users, each the best of args.repeat alternating runs."""
    limit = args.time_limit * 2
    rows = {t.name: [] for t in sides}
    for t in sides:
        pop3_load.warm_up(t, boxes, size, limit)
    for n in (1, len(boxes)):
        runs = {t.name: [] for t in sides}
        for _ in range(args.repeat):
            for t in sides:
                runs[t.name].append(pop3_load.case(t, boxes[:n], size, limit))
        for name, candidates in runs.items():
            rows[name].append(best(candidates, "retr_msgs_per_s", True))
    return rows


def bench_mailboxes(args, which: set[str]) -> None:
    size = 2000 if args.quick else args.mailbox_size
    pop_users = 8
    boxes = BOXES[:pop_users] if "pop3" in which else BOXES[:1]
    idle_conns = 100 if args.quick else args.idle
    started = now()
    notes = {"pop3": [], "imap": []}
    rows = {"pop3": {}, "imap": {}}
    k = Kotakpos(ALL_USERS, workers=args.workers[0])
    with Dovecot(ALL_USERS, max_connections=idle_conns + 200) as d, contextlib.ExitStack() as servers:
        t0 = time.monotonic()
        for b in boxes:
            d.load_maildir(b, mailbox_messages(size, owner=b))
        print(f"  loaded {len(boxes)} x {size} messages into Dovecot in {time.monotonic() - t0:.1f} s", flush=True)
        t0 = time.monotonic()
        for b in boxes:
            k.load_mailbox(b, mailbox_messages(size, owner=b))
        print(f"  loaded {len(boxes)} x {size} messages into Kotakpos in {time.monotonic() - t0:.1f} s", flush=True)
        # The other worker counts serve copies of the loaded store; every instance runs at once.
        instances = [k] + [k.copy(n) for n in args.workers[1:]]
        for instance in instances:
            servers.enter_context(instance)
        peer = Target(PEER, imap_port=d.imap_port, pop3_port=d.pop3_port, users=ALL_USERS,
                      deliver_proto="lmtp", deliver_port=d.lmtp_port, server_pid=d.pid, cpu_roots=(d.pid,))
        ours = [Target(ours_name(i.workers), imap_port=i.port("imap"), pop3_port=i.port("pop3"), users=ALL_USERS,
                       deliver_proto="smtp", deliver_port=i.port("smtp"), server_pid=i.pid, cpu_roots=(i.pid,))
                for i in instances]
        if "pop3" in which:
            sides = [peer]
            if speaks(k.port("pop3"), (b"+OK",)):
                sides += ours
            else:
                notes["pop3"].append("Kotakpos POP3 not available yet: skipped.")
            reference = ReferencePop3()
            for b in boxes:
                reference.load_maildrop(b, mailbox_messages(size, owner=b))
            with reference:
                sides.append(Target(REFERENCE_POP3, pop3_port=reference.port, users=ALL_USERS,
                                    cpu_roots=(reference.pid,)))
                rows["pop3"] = pop3_rows(args, sides, boxes, size)
            notes["pop3"].append(f"Each user's maildrop: {size} messages (2–6 KiB, {size * 4 // 1000} MB). "
                                 "RETR of every message in order, QUIT without DELE; one untimed pass first, then "
                                 f"{pop3_load.LOGINS_PER_CPU * (os.cpu_count() or 1)} untimed logins per user, so that "
                                 "every worker has verified every password once, as on a server that has run for a while. "
                                 f"Each row: the best of {args.repeat} runs, the sides alternating. Server CPU: the "
                                 "server's CPU time per message retrieved, whole sessions, on a machine with "
                                 f"{os.cpu_count()} CPUs shared with the load generator.")
            save("pop3", rows["pop3"], notes["pop3"], started)
        if "sort" in which:
            bench_sort(args, peer, ours, k, boxes[0], size, started)
        if "imap" in which:
            sides = [peer]
            if speaks(k.port("imap"), (b"* OK",)):
                sides += ours
            else:
                notes["imap"].append("Kotakpos IMAP not available yet: skipped.")
            runs = {t.name: [] for t in sides}
            for _ in range(args.repeat):
                for t in sides:
                    runs[t.name].append(imap_load.mailbox_figures(t, boxes[0], time_limit=args.time_limit * 2))
            for name, attempts in runs.items():
                rows["imap"][name] = []
                for i, first in enumerate(attempts[0]):
                    metric, higher = imap_load.MAIN_METRIC[first["case"]]
                    rows["imap"][name].append(best([a[i] for a in attempts], metric, higher))
            for t in sides:
                rows["imap"][t.name].append(imap_load.idle_figures(t, IDLERS, idle_conns))
            notes["imap"].append(
                f"Mailbox of {size} messages; each mailbox row is the best of {args.repeat} runs, the two "
                "sides alternating (LOGIN+SELECT and the ENVELOPE FETCH are each a median of 5 inside a run). "
                f"IDLE: {idle_conns} clients over {len(IDLERS)} users, one message delivered to all of them "
                "(LMTP into Dovecot, SMTP into Kotakpos); push delay from the delivery's acknowledgement to "
                "each client's EXISTS. Server memory: PSS summed over the server's processes (shared pages "
                "divided among them), and RSS summed.")
            save("imap", rows["imap"], notes["imap"], started)
        if "imap_write" in which:
            bench_imap_write(args, peer, ours, k, boxes[0], size)


def bench_imap_write(args, peer: Target, ours: list[Target], k: Kotakpos, box: str, size: int) -> None:
    """Write commands of 10 clients on one mailbox, the sides alternating; the best run counts."""
    started, notes = now(), []
    sides = [peer]
    if speaks(k.port("imap"), (b"* OK",)):
        sides += ours
    else:
        notes.append("Kotakpos IMAP not available yet: skipped.")
    rounds = 10 if args.quick else 50
    runs = {t.name: [] for t in sides}
    for _ in range(args.repeat):
        for t in sides:
            runs[t.name].append(imap_load.mixed_writers(t, box, rounds=rounds, time_limit=args.time_limit * 2))
    rows = {name: [best(attempts, "write_avg_ms", False)] for name, attempts in runs.items()}
    notes.append(f"Mailbox of {size} messages (more with each run: every client APPENDs {rounds} and expunges "
                 f"{rounds // 5}). 10 clients at once, each {rounds} rounds of APPEND (2 KiB, LITERAL+), "
                 "UID STORE +FLAGS and -FLAGS (\\Flagged) on a random message, NOOP, and every fifth round "
                 "UID STORE +FLAGS (\\Deleted) and UID EXPUNGE of its own last APPEND. Write commands: APPEND, "
                 "STORE, EXPUNGE, each timed to its tagged OK; protocol errors: any NO, BAD or hang-up. "
                 f"Best of {args.repeat} runs, the sides alternating. Server CPU: per write command, the NOOPs "
                 "and logins included.")
    save("imap_write", rows, notes, started)


def bench_sort(args, peer: Target, ours: list[Target], k: Kotakpos, box: str, size: int, started: str) -> None:
    """SORT and THREAD of the big mailbox, the sides alternating; the best run counts."""
    notes = []
    sides = [peer]
    if speaks(k.port("imap"), (b"* OK",)):
        sides += ours
    else:
        notes.append("Kotakpos IMAP not available yet: skipped.")
    runs = {t.name: [] for t in sides}
    for _ in range(args.repeat):
        for t in sides:
            runs[t.name].append(imap_load.sort_figures(t, box))
    rows = {name: [best([a[i] for a in attempts], "ms", False) for i in range(len(attempts[0]))]
            for name, attempts in runs.items()}
    notes.append(f"Mailbox of {size} messages (discussions of {THREAD_LENGTH}, 97 senders); each row is the "
                 f"best of {args.repeat} runs, the two sides alternating, each run a median of 5 after an "
                 "untimed first one (Dovecot builds its cache and thread index then). Time from the command "
                 "to its tagged OK, the whole answer read.")
    save("sort", rows, notes, started)


# -- relay ----------------------------------------------------------------------------------------
def bench_relay(args) -> None:
    started, notes = now(), []
    messages = 200 if args.quick else 1000
    rows = {PEER: [], **{ours_name(n): [] for n in args.workers}}
    sink = relay_load.Sink()
    try:
        with Postfix(relay=sink.routes) as p:
            rows[PEER].append(relay_load.run(PEER, sink, p.smtp_port, messages, flush=p.flush,
                                             deferred=p.deferred))
            rows[PEER].append(relay_load.run(PEER, sink, p.smtp_port, messages))
        for n in args.workers:
            name = ours_name(n)
            with Kotakpos([(E2E_USER, PASSWORD)], routes=sink.routes, workers=n) as k:
                if not speaks(k.port("smtp"), (b"220",)):
                    notes.append("Kotakpos SMTP not available yet: skipped.")
                    continue
                admin = k.admin()
                try:
                    def deferred() -> int:
                        return sum(1 for q in admin.queue() if q["attempts"] > 0)

                    def flush() -> None:
                        admin.queue_retry([q["id"] for q in admin.queue()])
                    rows[name].append(relay_load.run(name, sink, k.port("smtp"), messages, flush=flush,
                                                     deferred=deferred, timeout=args.time_limit * 4))
                    rows[name].append(relay_load.run(name, sink, k.port("smtp"), messages,
                                                     timeout=args.time_limit * 4))
                finally:
                    admin.close()
                if any(r["delivered"] < r["accepted"] for r in rows[name]):
                    notes.append(f"{name} did not deliver everything it queued within the time limit.")
    finally:
        sink.stop()
    notes.append("Submitted by 8 SMTP clients from loopback (trusted network / mynetworks). After outage: the "
                 "sinks are down during submission, every message is tried and deferred, then the sinks come "
                 "up and the queue is flushed (postqueue -f; Kotakpos admin queue_retry); the clock runs from "
                 "the flush. Streaming: from the first submission until the sinks have every message.")
    save("relay", rows, notes, started)


def _counts(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="smtp,pop3,imap,sort,imap_write,relay,filters", help="comma-separated subset")
    ap.add_argument("--quick", action="store_true", help="small loads, to check that everything runs")
    ap.add_argument("--mailbox-size", type=int, default=10_000)
    ap.add_argument("--idle", type=int, default=1000, help="IMAP IDLE connections")
    ap.add_argument("--time-limit", type=float, default=30.0, help="seconds per load cell")
    ap.add_argument("--repeat", type=int, default=2, help="alternating runs of each POP3/IMAP row; the best counts")
    ap.add_argument("--workers", default="1", type=_counts,
                    help="comma-separated [server] workers counts; Kotakpos runs once with each")
    ap.add_argument("--clients", default="1,8,32", type=_counts, help="concurrent clients of the SMTP cells")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get Postfix and Dovecot")
    args = ap.parse_args(argv)
    which = set(args.only.split(","))
    if not args.no_install:
        install()
    # 1,000 idlers and their server-side peers need file descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    if "smtp" in which:
        bench_smtp(args)
    if which & {"pop3", "imap", "sort", "imap_write"}:
        bench_mailboxes(args, which)
    if "relay" in which:
        bench_relay(args)
    if "filters" in which:
        # The MDA's own benchmark: filters off, the default pipeline, each filter alone.
        mda_cost.main(["--quick"] if args.quick else [])
    report.write_readme()
    print(f"tables written to {report.README}")


if __name__ == "__main__":
    main()
