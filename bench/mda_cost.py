"""The cost of the MDA filters: Kotakpos's SMTP accept rate with filters off, with the default
pipeline, and with each filter alone, all in the same run (issue 7).

    python -m bench.mda_cost            # 300 messages of 4 KiB per cell, 1 and 8 clients
    python -m bench.mda_cost --quick    # 60 per cell: checks that every cell runs

Each configuration is a private Kotakpos (bench/kotakpos.py) on loopback; the cells take
turns across configurations, so a noisy moment hurts them alike. DNS is switched off
(``[dns] resolver = "none"``, as on a LAN without a resolver: SPF, DKIM and DMARC record
temperror at once), so the figures are the filters' own CPU and store cost, not a network's.
Results go to bench/results/mda_cost.json and are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import ExitStack

from bench import report, smtp_load
from bench.kotakpos import Kotakpos
from bench.wire import Target

USER = ("mda@bench.test", "bench-password")
FILTERS = ["virus", "auth", "spam", "rules", "receipts"]  # the default pipeline, in order


def configurations() -> dict[str, list[str]]:
    configs = {"off": [], "default": FILTERS}
    configs.update({f"{name} only": [name] for name in FILTERS})
    return configs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few messages per cell")
    ap.add_argument("--clients", default="1,8", help="comma-separated client counts")
    args = ap.parse_args(argv)
    count = 60 if args.quick else 300
    clients = [int(c) for c in args.clients.split(",")]
    rows: dict[str, list[dict]] = {name: [] for name in configurations()}
    with ExitStack() as stack:
        targets = []
        for name, filters in configurations().items():
            # DNS is already off in every bench instance's config (bench/kotakpos.py)
            toml = "[mda]\nfilters = [" + ", ".join(f'"{f}"' for f in filters) + "]\n"
            k = stack.enter_context(Kotakpos([USER], extra_config=toml))
            targets.append(Target(name, smtp_port=k.port("smtp"), users=[USER]))
        for t in targets:  # warm-up: imports, first connections, page cache
            smtp_load.run_cell(t, 4096, 1, True, 10, 30, USER[0])
        for n in clients:
            case = f"4KiB c={n} reuse"
            for t in targets:
                row = smtp_load.run_cell(t, 4096, n, True, count, 60, USER[0])
                rows[t.name].append({"case": case, **row})
                print(f"  {t.name:14} {case:16} {row['msgs_per_s']:8} msg/s  p50 {row['p50_ms']} ms  "
                      f"p99 {row['p99_ms']} ms  errors {row['errors']}", flush=True)
    print()
    print(f"{'configuration':14} " + " ".join(f"{r['case']:>22}" for r in rows["off"]) + "   ms added per message (c=1)")
    base = {r["case"]: r["msgs_per_s"] for r in rows["off"]}
    for name, cells in rows.items():
        figures = " ".join(f"{r['msgs_per_s']:>9} msg/s ({r['msgs_per_s'] / base[r['case']]:.2f}x)"
                           if base[r["case"]] else f"{r['msgs_per_s']:>22}" for r in cells)
        one = cells[0]
        added = 1000 / one["msgs_per_s"] - 1000 / base[one["case"]] if one["msgs_per_s"] and base[one["case"]] else 0
        print(f"{name:14} {figures}   {added:6.1f}")
    path = report.RESULTS / "mda_cost.json"
    path.write_text(json.dumps({"benchmark": "mda_cost", "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                "messages_per_cell": count, "rows": rows}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
