"""Kotakpos's CPU per accepted SMTP message, split by thread: where the milliseconds go.

    python -m bench.thread_cpu --workers 2 --cells 4r,4n,100r --settle 4

Starts a private Kotakpos (bench/kotakpos.py), sends an untimed warm-up, then runs each cell
of bench/smtp_load.py (8 clients; `4r` is 4 KiB over reused connections, `4n` a new
connection per message, `100r`/`100n` the same at 100 KiB) and prints, per accepted message,
the CPU of every thread of every server process (user + system time from
/proc/<pid>/task/<tid>/stat, read before and after the cell) and their voluntary switches.

Python 3.11 does not give its threads' names to the kernel, so they are read once from
`py-spy dump` (`pip install py-spy`; run as root). Threads of one name add up (the MDA pool's,
both workers'); a process's second `store-writer` is its search index's writer. Session
threads (`smtp-12`, and `session-idle` while one waits for its next connection) come and go
with the connections: their time is the process's total less the other threads'
("sessions+ended"). `--settle` waits that many seconds after the last 250 before the last
reading, so that the search indexer's catch-up after a cell counts too; the CPU until the
last 250 (the accept span) and after it are then also shown apart.
"""

import argparse
import collections
import os
import re
import subprocess
import time
from pathlib import Path

from bench.kotakpos import Kotakpos
from bench.smtp_load import SIZES, run_cell
from bench.wire import Target

USER = ("alice@bench.test", "pw")
TICK = os.sysconf("SC_CLK_TCK")
_SWITCHES = re.compile(r"voluntary_ctxt_switches:\t(\d+)")
# Session threads' names (net.listener), digits dropped: counted in "sessions+ended", not by name.
SESSION_THREADS = {"smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps", "managesieve", "session-idle"}


def process_tree(root: int) -> list[int]:
    pids = [root]
    for task in Path(f"/proc/{root}/task").iterdir():
        for child in (task / "children").read_text().split():
            pids += process_tree(int(child))
    return pids


def thread_names(root: int) -> dict[int, str]:
    """tid -> thread name for every thread alive now, digits of numbered names dropped."""
    names: dict[int, str] = {}
    for pid in process_tree(root):
        dump = subprocess.run(["py-spy", "dump", "-p", str(pid)], capture_output=True, text=True, check=True).stdout
        writers = 0
        for tid, name in re.findall(r'Thread (\d+) \(\w+\): "([^"]*)"', dump):
            name = re.sub(r"[-_]?\d+(_\d+)?$", "", name)  # smtp-12, mda-filters_3
            if name in SESSION_THREADS or name.endswith("-new"):
                continue
            if name == "store-writer":
                writers += 1
                name = "store-writer" if writers == 1 else "search-writer"  # the store opens first
            names[int(tid)] = name
    return names


def reading(root: int, names: dict[int, str]) -> tuple[collections.Counter, collections.Counter]:
    """(CPU seconds, voluntary switches) by thread name; "(total)" is every process's own total."""
    cpu: collections.Counter = collections.Counter()
    switches: collections.Counter = collections.Counter()
    for pid in process_tree(root):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu["(total)"] += (int(fields[11]) + int(fields[12])) / TICK
        for task in Path(f"/proc/{pid}/task").iterdir():
            name = names.get(int(task.name))
            if name is None:
                continue
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                status = (task / "status").read_text()
            except OSError:  # ended meanwhile
                continue
            cpu[name] += (int(fields[11]) + int(fields[12])) / TICK
            switches[name] += int(_SWITCHES.search(status).group(1))
    return cpu, switches


def per_message(before: collections.Counter, after: collections.Counter, count: int, scale: float) -> dict:
    return {name: (after[name] - before.get(name, 0)) * scale / count for name in after}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--cells", default="4r,4n,100r")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--count", type=int, default=1500, help="4 KiB messages per cell (100 KiB: a third)")
    ap.add_argument("--settle", type=float, default=0.0)
    args = ap.parse_args(argv)
    server = Kotakpos(users=[USER], workers=args.workers)
    server.start()
    try:
        target = Target("kotakpos", smtp_port=server.port("smtp"), users=[USER], cpu_roots=(server.pid,))
        run_cell(target, SIZES["4KiB"], args.clients, True, 200, 30, USER[0])  # warm-up
        time.sleep(args.settle)  # the warm-up's own indexing is not the first cell's
        names = thread_names(server.pid)
        for cell in args.cells.split(","):
            size = "100KiB" if cell.startswith("100") else "4KiB"
            count = args.count if size == "4KiB" else max(1, args.count // 3)
            cpu_before, switches_before = reading(server.pid, names)
            row = run_cell(target, SIZES[size], args.clients, cell.endswith("r"), count, 60, USER[0])
            cpu_last_250, _ = reading(server.pid, names)
            time.sleep(args.settle)
            cpu_after, switches_after = reading(server.pid, names)
            cpu = per_message(cpu_before, cpu_after, row["accepted"], 1000)
            total = cpu.pop("(total)")
            cpu["sessions+ended"] = total - sum(cpu.values())
            switches = per_message(switches_before, switches_after, row["accepted"], 1)
            print(f"{cell} workers={args.workers}: {row['msgs_per_s']} msg/s, p50 {row['p50_ms']} ms, "
                  f"{total:.2f} ms CPU per message, {row['errors']} errors")
            if args.settle:
                spans = {"until the last 250": (cpu_before, cpu_last_250), "after it": (cpu_last_250, cpu_after)}
                for span, (start, end) in spans.items():
                    part = per_message(start, end, row["accepted"], 1000)
                    print(f"  {span}: {part.pop('(total)'):.2f} ms/msg, of which " + ", ".join(
                        f"{n} {v:.2f}" for n, v in sorted(part.items(), key=lambda kv: -kv[1]) if v >= 0.05))
            print("  ms/msg: " + ", ".join(f"{n} {v:.2f}" for n, v in sorted(cpu.items(), key=lambda kv: -kv[1])
                                          if v >= 0.01))
            print("  voluntary switches/msg: " + ", ".join(
                f"{n} {v:.1f}" for n, v in sorted(switches.items(), key=lambda kv: -kv[1]) if v >= 0.05), flush=True)
    finally:
        server.stop()
        server.clean_up()


if __name__ == "__main__":
    main()
