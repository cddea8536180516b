"""How worker processes should write the store: each with its own writer, or all through one.

Side by side in one run, on the delivery of messages into mailboxes (the call the MDA makes
for local recipients, ``Store.deliver``), P worker processes with T sending threads each; a
thread waits for its delivery's answer (committed and fsynced) before it sends the next.

- ``own`` (A, today's product, docs/ARCHITECTURE.md "How the workers write"): every worker
  opens the store with its own writer thread and group commit; the writers take turns on the
  store's flock. After each commit a worker rings the others (``net.doorbell``), which read
  the change journal, as the serving workers do.
- ``funnel`` (B): the workers send each delivery (recipients and the message's bytes) over a
  Unix stream socket to one writer process, one connection per sending thread. That process
  serves each connection in a thread of its own, calls ``Store.deliver`` (so its one writer
  groups every worker's deliveries into its commits) and answers once the call returns. It
  rings the workers after each commit; they keep a store open to read the journal, as serving
  workers would still have to, for IDLE, their caches and the queue runner.
- ``funnel-prepared`` (B'): the same, but each worker analyses its message first (the MIME
  analysis, hash and sort keys ``Store.deliver`` makes in the caller's thread) and sends the
  results with the bytes; the writer process only writes. A product funnel would do this, to
  keep the parsing on every core. It reaches the store's private ``messages.prepare`` and
  ``_deliver_group``: there is no public API for an analysis made in another process.

A frame, both ways: 8 bytes (big-endian lengths of the JSON header and of the body), the
header, the body. A request's header holds the recipients (and, for B', the analysis), its
body the message; a reply's header holds the UIDs or the error, its body is empty.

Reported per cell: delivered messages/s, p50/p99 latency of one delivery, deliveries per
fsync (``Database.commits`` of every writer), and CPU time per message (utime + stime, from
/proc) of every process of the cell, of the funnel's writer process, and of every process's
store writer thread. The shapes alternate cell by cell, their order reversed every other
round, each cell in a fresh store; a funnel's rate is also compared with A's of the same round.

    python -m bench.store_writers [--seconds 4] [--rounds 3] [--clients 8] [--quick]

Writes bench/results/store_writers.json and the table in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import struct
import tempfile
import threading
import time
from pathlib import Path

from appliance.mime.info import MessageInfo
from appliance.net.doorbell import Doorbell
from appliance.store import Delivery, Store
from appliance.store.messages import _Prepared, prepare
from bench.messages import DOMAIN
from bench.peers import cpu_by_process, cpu_spent
from bench.smtp_load import SIZES, _Messages
from bench.wire import percentiles

HERE = Path(__file__).parent
SHAPES = {
    "own": "A: own writers, taking turns",
    "funnel": "B: one writer, it analyses",
    "funnel-prepared": "B': one writer, workers analyse",
}
USERS = 8  # recipients, one per sending thread in turn
PREFIX = struct.Struct(">II")  # lengths of the header and of the body
MAX_FRAME = 64 << 20  # a frame's header and body together; more means the stream is broken
START_TIMEOUT = 60.0


# -- the funnel's frames ---------------------------------------------------------------

class FrameError(Exception):
    """The stream ended inside a frame, or announced one too big to be honest."""


def encode_frame(header: dict, body: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return PREFIX.pack(len(head), len(body)) + head + body


def read_frame(reader) -> tuple[dict, bytes] | None:
    """The next frame from a buffered binary reader; None when the stream ends between frames."""
    prefix = reader.read(PREFIX.size)
    if not prefix:
        return None
    if len(prefix) < PREFIX.size:
        raise FrameError("stream ended inside a frame's lengths")
    head_size, body_size = PREFIX.unpack(prefix)
    if head_size + body_size > MAX_FRAME:
        raise FrameError(f"frame of {head_size + body_size} bytes announced")
    head = reader.read(head_size)
    body = reader.read(body_size)
    if len(head) < head_size or len(body) < body_size:
        raise FrameError("stream ended inside a frame")
    return json.loads(head), body


def delivery_request(raw: bytes, deliveries: list[Delivery], analyse: bool) -> bytes:
    """A worker's request; with ``analyse``, the worker's own analysis of the message goes along."""
    header: dict = {"to": [[d.user_id, d.mailbox] for d in deliveries]}
    if analyse:
        prepared = prepare(raw)
        raw = prepared.raw
        header.update(sha256=prepared.sha256.hex(), info=prepared.info_json, sort=list(prepared.sort_row))
    return encode_frame(header, raw)


def store_request(store: Store, header: dict, raw: bytes) -> dict:
    """What the writer process does with one request: store it, and the reply's header."""
    deliveries = tuple(Delivery(user_id, mailbox) for user_id, mailbox in header["to"])
    if "info" in header:
        prepared = _Prepared(raw, bytes.fromhex(header["sha256"]), MessageInfo.from_json(header["info"]),
                             header["info"], tuple(header["sort"]))
        result = store.db.write_grouped(store._deliver_group, (prepared, deliveries, (), time.time()))
    else:
        result = store.deliver(raw, deliveries)
    return {"uids": {str(user): list(place) for user, place in result.uids.items()}}


class FunnelClient:
    """One sending thread's connection to the writer process."""

    def __init__(self, path: str, analyse: bool):
        self.analyse = analyse
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)  # a writer that stopped answering fails the cell, never hangs it
        self.sock.connect(path)
        self.reader = self.sock.makefile("rb")

    def deliver(self, raw: bytes, deliveries: list[Delivery]) -> dict:
        self.sock.sendall(delivery_request(raw, deliveries, self.analyse))
        reply = read_frame(self.reader)
        if reply is None:
            raise FrameError("the writer closed the connection")
        if "error" in reply[0]:
            raise RuntimeError(reply[0]["error"])
        return reply[0]["uids"]

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _serve_connection(store: Store, conn: socket.socket) -> None:
    with conn, conn.makefile("rb") as reader:
        try:
            while (frame := read_frame(reader)) is not None:
                try:
                    reply = store_request(store, *frame)
                except Exception as e:  # noqa: BLE001 - the worker's delivery fails, not the writer
                    reply = {"error": repr(e)[:300]}
                conn.sendall(encode_frame(reply))
        except (FrameError, OSError):
            return


# -- the processes of a cell -----------------------------------------------------------

def thread_cpu_seconds(tid: int) -> float:
    """CPU time (user + system) one thread of this process has used so far."""
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _writer_thread(store: Store) -> int:
    """The kernel's id of the store's writer thread (``db.Database``), to read its CPU time."""
    return store.db._writer.native_id


def _writer_process(folder: str, path: str, peers: int, ready, go, finish, results) -> None:
    """The funnel's writer: doorbell 0 of 1 + ``peers``; serves until ``finish`` is set."""
    store = Store.in_folder(folder, indexer=False)
    bell = Doorbell(Path(folder) / "bells", 0, peers + 1, on_ring=store.catch_up, report=dict,
                    on_certificate=lambda: None)
    store.after_each_commit(bell.ring_others)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(256)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve_connection, args=(store, conn), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    ready.put(os.getpid())
    go.wait()
    writer_cpu = thread_cpu_seconds(_writer_thread(store))
    finish.wait()
    results.put({"role": "writer", "commits": store.db.commits,
                 "writer_thread_cpu": thread_cpu_seconds(_writer_thread(store)) - writer_cpu})
    listener.close()
    bell.close()
    store.close()


def _worker_process(shape: str, index: int, workers: int, threads: int, size: int, folder: str,
                    path: str, users: list[int], ready, go, stop, finish, results) -> None:
    """One worker: ``threads`` senders delivering from ``go`` until ``stop``."""
    store = Store.in_folder(folder, indexer=False)
    if shape == "own":
        bell = Doorbell(Path(folder) / "bells", index, workers, on_ring=store.catch_up, report=dict,
                        on_certificate=lambda: None)
        store.after_each_commit(bell.ring_others)
    else:  # the writer process is bell 0 and rings the workers
        bell = Doorbell(Path(folder) / "bells", index + 1, workers + 1, on_ring=store.catch_up, report=dict,
                        on_certificate=lambda: None)
    commits_before = store.db.commits
    started = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []

    def sender(t: int) -> None:
        number = index * threads + t
        messages = _Messages(size, f"user{number % USERS}@{DOMAIN}")
        deliveries = [Delivery(users[number % USERS])]
        client = FunnelClient(path, shape == "funnel-prepared") if shape != "own" else None
        deliver = store.deliver if client is None else client.deliver
        mine = latencies[t]
        started.wait()
        try:
            while not stop.is_set():
                raw = trace(number, len(mine)) + messages.get(len(mine))
                t0 = time.monotonic()
                deliver(raw, deliveries)
                mine.append(time.monotonic() - t0)
        except Exception as e:  # noqa: BLE001 - reported with the cell
            errors.append(repr(e)[:300])
        finally:
            if client is not None:
                client.close()

    senders = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
    for s in senders:
        s.start()
    ready.put(os.getpid())
    go.wait()
    writer_cpu = thread_cpu_seconds(_writer_thread(store))
    started.set()
    for s in senders:
        s.join()
    results.put({"role": "worker", "ended": time.monotonic(), "latencies": [x for mine in latencies for x in mine],
                 "commits": store.db.commits - commits_before, "errors": errors,
                 "writer_thread_cpu": thread_cpu_seconds(_writer_thread(store)) - writer_cpu})
    finish.wait()
    bell.close()
    store.close()


def trace(sender: int, n: int) -> bytes:
    """What the MDA puts above a received message: Return-Path and our Received line."""
    when = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    return (f"Return-Path: <loadgen@{DOMAIN}>\r\n"
            f"Received: from loadgen.{DOMAIN} (loadgen.{DOMAIN} [127.0.0.1])\r\n"
            f"\tby mail.{DOMAIN} (Kotakpos) with ESMTP id {sender:04x}{n:08x}\r\n"
            f"\tfor <user{sender % USERS}@{DOMAIN}>; {when}\r\n").encode()


def run_cell(shape: str, workers: int, threads: int, size: int, seconds: float) -> dict:
    """One cell in a fresh store; every process is gone when it returns."""
    mp = multiprocessing.get_context("fork")  # as the supervisor forks its workers
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        store = Store.in_folder(folder, indexer=False)
        store.add_domain(DOMAIN)
        users = [store.add_user(f"user{i}@{DOMAIN}", "pw").id for i in range(USERS)]
        store.close()
        (Path(folder) / "bells").mkdir()
        path = str(Path(folder) / "writer.sock")
        ready, results = mp.Queue(), mp.Queue()
        go, stop, finish = mp.Event(), mp.Event(), mp.Event()
        processes = []
        if shape != "own":
            processes.append(mp.Process(target=_writer_process,
                                        args=(folder, path, workers, ready, go, finish, results)))
            processes[0].start()
            ready.get(timeout=START_TIMEOUT)  # listening before the workers connect
        for index in range(workers):
            processes.append(mp.Process(target=_worker_process, args=(
                shape, index, workers, threads, size, folder, path, users, ready, go, stop, finish, results)))
            processes[-1].start()
        try:
            for _ in range(workers):
                ready.get(timeout=START_TIMEOUT)
            pids = [p.pid for p in processes]
            cpu_before = {pid: cpu_by_process([pid]) for pid in pids}
            start = time.monotonic()
            go.set()
            time.sleep(seconds)
            stop.set()
            reports = [results.get(timeout=START_TIMEOUT) for _ in range(workers)]
            cpu = {pid: sum(cpu_spent(cpu_before[pid], cpu_by_process([pid])).values()) for pid in pids}
            finish.set()
            if shape != "own":
                reports.append(results.get(timeout=START_TIMEOUT))
        finally:
            go.set()
            stop.set()
            finish.set()
            for p in processes:
                p.join(START_TIMEOUT)
                if p.is_alive():
                    p.kill()
                    p.join()
    latencies = [x for r in reports for x in r.get("latencies", ())]
    elapsed = max(r["ended"] for r in reports if r["role"] == "worker") - start
    commits = sum(r["commits"] for r in reports)
    delivered = len(latencies)
    writer_cpu = cpu[processes[0].pid] if shape != "own" else 0.0
    errors = [e for r in reports for e in r.get("errors", ())]
    return {
        "shape": shape, "workers": workers, "threads": threads, "size": size,
        "delivered": delivered, "seconds": round(elapsed, 3),
        "msgs_per_s": round(delivered / elapsed, 1),
        **percentiles(latencies),
        "commits": commits, "per_fsync": round(delivered / max(commits, 1), 2),
        "cpu_ms": round(1000 * sum(cpu.values()) / max(delivered, 1), 3),
        "writer_cpu_ms": round(1000 * writer_cpu / max(delivered, 1), 3),
        # every process's store writer thread; in B the workers' only hear the journal
        "writer_threads_cpu_ms": round(1000 * sum(r["writer_thread_cpu"] for r in reports) / max(delivered, 1), 3),
        "cores": round(sum(cpu.values()) / elapsed, 2),
        "errors": len(errors), "first_error": errors[0] if errors else None,
    }


# -- the table -------------------------------------------------------------------------

def summary(rows: list[dict]) -> list[dict]:
    """Per (size, workers, shape): the median of the rounds, and their range for msg/s; for a
    funnel, also its msg/s ÷ A's of the same round (the neighbouring cell: machine noise that
    lasts longer than a round hits both), median, and in how many rounds it was ahead."""
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["size"], r["workers"], r["shape"]), []).append(r)
    out = []
    for (size, workers, shape), runs in cells.items():
        rates = [r["msgs_per_s"] for r in runs]
        own = {r["round"]: r["msgs_per_s"] for r in cells[(size, workers, "own")]}
        ratios = [r["msgs_per_s"] / own[r["round"]] for r in runs if own.get(r["round"])]
        out.append({"size": size, "workers": workers, "shape": shape, "rounds": len(runs),
                    "msgs_per_s": statistics.median(rates), "min": min(rates), "max": max(rates),
                    "vs_own": statistics.median(ratios) if ratios else None,
                    "ahead": sum(ratio > 1 for ratio in ratios),
                    **{key: statistics.median(r[key] for r in runs)
                       for key in ("p50_ms", "p99_ms", "per_fsync", "cpu_ms", "writer_cpu_ms", "writer_threads_cpu_ms",
                                   "cores")},
                    "errors": sum(r["errors"] for r in runs)})
    return out


def size_name(size: int) -> str:
    return next(name for name, value in SIZES.items() if value == size).replace("KiB", " KiB")


def table(rows: list[dict]) -> list[str]:
    lines = ["| message | workers × threads | shape | msg/s, median (range) | ÷ A, same round: median "
             "(rounds ahead) | p50 ms | p99 ms | msgs per fsync | CPU ms/msg, all processes | writer process | "
             "store writer threads | cores used |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary(rows):
        threads = next(r["threads"] for r in rows if r["workers"] == s["workers"])
        funnel = s["shape"] != "own" and s["vs_own"] is not None
        writer = f"{s['writer_cpu_ms']:.2f}" if s["shape"] != "own" else "–"
        versus = f"{s['vs_own']:.2f}× ({s['ahead']} of {s['rounds']})" if funnel else "–"
        lines.append(f"| {size_name(s['size'])} | {s['workers']} × {threads} | {SHAPES[s['shape']]} | "
                     f"{s['msgs_per_s']:.0f} ({s['min']:.0f}–{s['max']:.0f}) | {versus} | {s['p50_ms']:.1f} | "
                     f"{s['p99_ms']:.1f} | {s['per_fsync']:.1f} | {s['cpu_ms']:.2f} | {writer} | "
                     f"{s['writer_threads_cpu_ms']:.2f} | {s['cores']:.2f} |")
    return lines


def write_readme(lines: list[str], note: str) -> None:
    readme = HERE / "README.md"
    text = readme.read_text()
    start, end = "<!-- store_writers:start -->", "<!-- store_writers:end -->"
    block = f"{start}\n{note}\n\n" + "\n".join(lines) + f"\n{end}"
    if start in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text += ("\n## Store: how the workers write (issue 20)\n\n`python -m bench.store_writers`: each worker "
                 f"with its own writer against one writer process they send to, same run.\n\n{block}\n")
    readme.write_text(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="time per cell")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="sending threads in all, split among the workers")
    parser.add_argument("--workers", default="1,2", help="worker process counts")
    parser.add_argument("--quick", action="store_true", help="one round of 1 s cells; the README is left alone")
    args = parser.parse_args(argv)
    seconds, rounds = (1.0, 1) if args.quick else (args.seconds, args.rounds)
    counts = [int(n) for n in args.workers.split(",")]
    rows = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for round_ in range(rounds):
        order = list(SHAPES) if round_ % 2 == 0 else list(reversed(SHAPES))
        for size in SIZES.values():
            for workers in counts:
                for shape in order:
                    row = run_cell(shape, workers, max(1, args.clients // workers), size, seconds)
                    rows.append({"round": round_, **row})
                    print(f"round {round_} {size_name(size):>8} {workers}x{row['threads']} {shape:16} "
                          f"{row['msgs_per_s']:7.0f} msg/s  p50 {row['p50_ms']} p99 {row['p99_ms']} ms  "
                          f"{row['per_fsync']:.1f}/fsync  cpu {row['cpu_ms']:.2f} ms/msg "
                          f"(writer process {row['writer_cpu_ms']:.2f}, "
                          f"writer threads {row['writer_threads_cpu_ms']:.2f})  "
                          f"errors {row['errors']}", flush=True)
    lines = table(rows)
    print("\n".join(lines))
    note = (f"Run {started} on {os.cpu_count()} CPUs (shared with other work: the range is the noise), "
            f"{rounds} rounds of {seconds:g} s per cell, {args.clients} sending threads in all.")
    if not args.quick:
        results = HERE / "results"
        results.mkdir(exist_ok=True)
        (results / "store_writers.json").write_text(json.dumps(
            {"started": started, "seconds_per_cell": seconds, "clients": args.clients, "rows": rows}, indent=2))
        write_readme(lines, note)


if __name__ == "__main__":
    main()
