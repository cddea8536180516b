"""Deliveries per second into the store, group commit against one fsync per message.

Same run, same machine, same code path: the only difference between the two sides is
whether the writer thread may carry several deliveries in one commit (``max_batch``) or
must commit each alone. Every delivery is fully durable (WAL, synchronous=FULL) either way.

    python -m bench.store_deliver [--seconds 3] [--quick]

Writes bench/results/store_deliver.json and the table in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from appliance.store import Delivery, Store

HERE = Path(__file__).parent
SIZES = {"4 KiB": 4096, "100 KiB": 102400}
WRITERS = (1, 8, 32)


def message(size: int, n: int, tag: str) -> bytes:
    head = f"From: bench@example.org\r\nTo: user@example.org\r\nSubject: {tag} {n}\r\n\r\n".encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return head + body


def run(max_batch: int, writers: int, size: int, seconds: float, tag: str) -> dict:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        store = Store.in_folder(folder, max_batch=max_batch)
        store.add_domain("example.org")
        user = store.add_user("user@example.org", "pw")
        count = [0] * writers
        stop = threading.Event()

        def writer(index: int) -> None:
            n = 0
            while not stop.is_set():
                store.deliver(message(size, n, f"{tag}-{index}"), [Delivery(user.id)])
                n += 1
            count[index] = n

        commits_before = store.db.commits
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        commits = store.db.commits - commits_before
        store.close()
    delivered = sum(count)
    return {"deliveries": delivered, "seconds": elapsed, "per_second": delivered / elapsed,
            "commits": commits, "deliveries_per_commit": delivered / max(commits, 1)}


def flush_ms(size: int, samples: int = 200) -> float:
    """Median time of appending ``size`` bytes and fsyncing them on the benchmark's disk: about
    what one message's commit alone pays beyond its CPU, and all that grouping can save."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        fd = os.open(os.path.join(folder, "probe"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            times = []
            for _ in range(samples):
                start = time.perf_counter()
                os.write(fd, b"x" * size)
                os.fsync(fd)
                times.append(time.perf_counter() - start)
        finally:
            os.close(fd)
    return sorted(times)[len(times) // 2] * 1000


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per cell")
    parser.add_argument("--quick", action="store_true", help="0.5 s per cell")
    args = parser.parse_args(argv)
    seconds = 0.5 if args.quick else args.seconds
    flush = {name: flush_ms(size) for name, size in SIZES.items()}
    print("write + fsync on this disk (median): " + ", ".join(f"{n} {ms:.2f} ms" for n, ms in flush.items()), flush=True)
    rows = []
    for size_name, size in SIZES.items():
        for writers in WRITERS:
            # Alternate the sides cell by cell, so machine noise hits both alike.
            alone = run(1, writers, size, seconds, "alone")
            grouped = run(512, writers, size, seconds, "group")
            rows.append({"size": size_name, "writers": writers, "group_commit": grouped, "fsync_each": alone,
                         "ratio": grouped["per_second"] / alone["per_second"]})
            print(f"{size_name:>8} {writers:>3} writers: group {grouped['per_second']:8.0f}/s "
                  f"({grouped['deliveries_per_commit']:.1f}/commit)  alone {alone['per_second']:8.0f}/s  "
                  f"ratio {rows[-1]['ratio']:.2f}x", flush=True)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "store_deliver.json").write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M"),
                                                            "seconds_per_cell": seconds, "flush_ms": flush,
                                                            "rows": rows}, indent=2))
    write_table(rows, flush)


def write_table(rows: list[dict], flush: dict[str, float]) -> None:
    lines = ["| message | writers | group commit /s | deliveries per fsync | one fsync each /s | ratio |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['writers']} | {r['group_commit']['per_second']:.0f} | "
                     f"{r['group_commit']['deliveries_per_commit']:.1f} | {r['fsync_each']['per_second']:.0f} | "
                     f"**{r['ratio']:.1f}×** |")
    # Grouping saves flushes, not the work of each delivery (analysis, hashing, SQL, on one
    # core's worth of Python). A ratio of 5 needs committing alone to add four grouped
    # deliveries' worth of time, which only a disk whose flush takes that long can give.
    lines.append("")
    for r in rows:
        if r["writers"] == max(WRITERS):
            each = 1000 / r["group_commit"]["per_second"]
            cost = flush[r["size"]]
            lines.append(f"- {r['size']}, {r['writers']} writers: {each:.2f} ms per grouped delivery, so 5× needs "
                         f"about {4 * each:.2f} ms of flush per lone commit; this disk writes and fsyncs "
                         f"{r['size']} in {cost:.2f} ms.")
    readme = HERE / "README.md"
    text = readme.read_text()
    start, end = "<!-- store:start -->", "<!-- store:end -->"
    table = "\n".join(lines)
    if start in text:
        head, rest = text.split(start, 1)
        text = head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1]
    else:
        text += f"\n## Store: deliveries per second (issue 2)\n\n`python -m bench.store_deliver`: " \
                f"group commit against one fsync per message, same run.\n\n{start}\n{table}\n{end}\n"
    readme.write_text(text)


if __name__ == "__main__":
    main()
