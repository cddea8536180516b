"""Figures of the frozen binary: size, time from start to ready, resident memory at idle.

    build/build.sh && python -m bench.startup [--binary dist/kotakpos] [--starts 5] [--idle 5] [--workers N]

Starts ``kotakpos serve`` in a fresh temporary data folder on free offset ports and
measures the time from exec to the ``ready`` log line (all listeners up): the first start
(which also makes the certificate and the store) and ``--starts`` later starts on the same
folder. After the last start it waits ``--idle`` seconds and reads the memory of every
process of the server: the one-file binary runs as a small unpacking parent, the Python
child (with ``[server] workers`` other than 1, the supervisor) and its worker processes, and
the box pays for all of them. VmRSS counts shared pages once per process, so the whole
server's memory is PSS (/proc/PID/smaps_rollup) summed. Also times ``kotakpos --version``,
the floor under every CLI command. Writes bench/results/startup.json and prints a table with
the goals of issues 9 and 20 (``--workers`` sets ``[server] workers``; the default config
runs a worker per CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "startup.json"
PORTS = (25, 587, 465, 110, 995, 143, 993)
GOALS = {"size_mib": 60, "ready_later_s": 2.0, "pss_idle_mib": 120}  # PSS: the whole server, 2 workers
READY = re.compile(rb": ready ")


def free_offset() -> int:
    offsets = list(range(20000, 64000, 1000))
    random.shuffle(offsets)
    for offset in offsets:
        if all(_port_free(port + offset) for port in PORTS):
            return offset
    raise RuntimeError("no port offset with seven free ports")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


class Run:
    """One ``kotakpos serve`` process, its log in a file."""

    def __init__(self, binary: Path, data_dir: Path, offset: int):
        self.log_path = data_dir.parent / "serve.log"
        self._log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [str(binary), "serve", "--data", str(data_dir), "--listen", "127.0.0.1", "--port-offset", str(offset)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120.0) -> tuple[float, float]:
        """Seconds from exec to the ready line: wall clock, and CPU time of every process."""
        while time.monotonic() - self.started < timeout:
            if READY.search(self.log_path.read_bytes()):
                wall = time.monotonic() - self.started
                pids = [self.process.pid, *descendants(self.process.pid)]
                return wall, sum(cpu_seconds(pid) for pid in pids)
            if self.process.poll() is not None:
                raise SystemExit(f"kotakpos serve exited with {self.process.returncode}:\n"
                                 f"{self.log_path.read_text(errors='replace')}")
            time.sleep(0.005)
        raise SystemExit(f"no ready line within {timeout} s")

    def memory(self) -> dict:
        """VmRSS of the unpacking parent and of the server's processes, and PSS of them all, in MiB."""
        parent = rss_kib(self.process.pid)
        server = descendants(self.process.pid)
        return {"parent_mib": round(parent / 1024, 1),
                "server_mib": round(sum(rss_kib(pid) for pid in server) / 1024, 1),
                "rss_idle_mib": round((parent + sum(rss_kib(pid) for pid in server)) / 1024, 1),
                "pss_idle_mib": round(sum(pss_kib(pid) for pid in [self.process.pid, *server]) / 1024, 1),
                "server_processes": len(server)}

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(60)
        self._log.close()
        self.log_path.unlink()
        return code


def time_version(binary: Path, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.monotonic()
        subprocess.run([str(binary), "--version"], check=True, capture_output=True)
        times.append(time.monotonic() - start)
    return statistics.median(times)


def measure(binary: Path, starts: int, idle: float, workers: int | None) -> dict:
    size = binary.stat().st_size
    with tempfile.TemporaryDirectory(prefix="kotakpos-startup-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        # A fixed hostname: the certificate made on first start should not depend on the box.
        (data_dir / "kotakpos.toml").write_text('[server]\nhostname = "mail.example.test"\n'
                                                + (f"workers = {workers}\n" if workers is not None else ""))
        offset = free_offset()
        first = Run(binary, data_dir, offset)
        ready_first, cpu_first = first.wait_ready()
        first.stop()
        later, later_cpu = [], []
        memory = {}
        for i in range(starts):
            run = Run(binary, data_dir, offset)
            wall, cpu = run.wait_ready()
            later.append(wall)
            later_cpu.append(cpu)
            if i == starts - 1:
                time.sleep(idle)
                memory = run.memory()
            code = run.stop()
            if code != 0:
                raise SystemExit(f"kotakpos serve exited with {code} on SIGTERM")
    return {
        "binary": str(binary.relative_to(ROOT)) if binary.is_relative_to(ROOT) else str(binary),
        "size_bytes": size,
        "size_mib": round(size / 1048576, 1),
        "ready_first_s": round(ready_first, 3),
        "ready_later_s": round(statistics.median(later), 3),
        "ready_later_max_s": round(max(later), 3),
        "ready_later_all_s": [round(t, 3) for t in later],
        "cpu_to_ready_first_s": round(cpu_first, 3),
        "cpu_to_ready_later_s": round(statistics.median(later_cpu), 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **memory,
        "idle_seconds": idle,
        "workers": "default (one per CPU)" if workers is None else workers,
        "cli_version_s": round(time_version(binary), 3),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def table(r: dict) -> str:
    rows = [
        ("binary size", f"{r['size_mib']} MiB", f"< {GOALS['size_mib']} MB", r["size_mib"] < GOALS["size_mib"]),
        ("ready, first start", f"{r['ready_first_s']:.2f} s", "", None),
        ("ready, later starts (median)", f"{r['ready_later_s']:.2f} s", f"< {GOALS['ready_later_s']} s",
         r["ready_later_s"] < GOALS["ready_later_s"]),
        ("ready, later starts (max)", f"{r['ready_later_max_s']:.2f} s", "", None),
        ("CPU time to ready, first / later", f"{r['cpu_to_ready_first_s']:.2f} / {r['cpu_to_ready_later_s']:.2f} s",
         "", None),
        (f"PSS at idle ({r['idle_seconds']:g} s after ready), all processes", f"{r['pss_idle_mib']} MiB",
         f"< {GOALS['pss_idle_mib']} MB", r["pss_idle_mib"] < GOALS["pss_idle_mib"]),
        ("  RSS summed (shared pages counted again)", f"{r['rss_idle_mib']} MiB", "", None),
        (f"  server processes (workers: {r['workers']})", f"{r['server_processes']}", "", None),
        ("  RSS of the unpacking parent", f"{r['parent_mib']} MiB", "", None),
        ("kotakpos --version", f"{r['cli_version_s']:.2f} s", "", None),
    ]
    lines = [f"{'figure':<52} {'measured':>12}  {'goal':<10} ", "-" * 82]
    for name, value, goal, ok in rows:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        lines.append(f"{name:<52} {value:>12}  {goal:<10} {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, default=ROOT / "dist" / "kotakpos")
    parser.add_argument("--starts", type=int, default=5, help="later starts to time (median reported)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before reading RSS")
    parser.add_argument("--workers", type=int, default=None, help="[server] workers (default: the config's default)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.binary.exists():
        raise SystemExit(f"{args.binary} does not exist: run build/build.sh first")
    result = measure(args.binary.resolve(), args.starts, args.idle, args.workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    load = ", ".join(f"{x:.1f}" for x in result["load_average"])
    print(f"\nload average {load} on {result['machine']['cpus']} CPUs (wall times suffer on a busy box; "
          f"CPU times much less)\nwritten to {args.out}")


if __name__ == "__main__":
    main()
