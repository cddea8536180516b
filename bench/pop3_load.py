"""POP3 on a big maildrop: session start-up and RETR throughput.

Each user's maildrop holds the bulk-loaded mailbox (10,000 messages by default). For 1 and for
8 concurrent users (each on their own maildrop) we time:
- login+STAT+LIST+UIDL: connect, USER/PASS, STAT, LIST, UIDL — what every POP3 client does first;
- RETR: every message in order (bounded by `time_limit`), messages/s and MB/s over all users.
Sessions end with QUIT and no DELE, so the maildrops stay as they were. When the target names its
process trees (Target.cpu_roots), also the server's CPU time per message retrieved.

    python -m bench.pop3_load --pop3-port 1110 --user u0@bench.test:pw --user u1@bench.test:pw
"""

import argparse
import json
import os
import threading
import time

from bench.peers import cpu_by_process, cpu_spent
from bench.wire import Pop3, ProtocolError, Target


def _session(target: Target, address: str, retr_limit: int, deadline: float, out: dict) -> None:
    t0 = time.monotonic()
    c = Pop3(target.host, target.pop3_port)
    try:
        c.login(address, target.password(address))
        stat = c.simple("STAT").split()
        count = int(stat[1])
        listing = c.multi("LIST")
        uidl = c.multi("UIDL")
        out["startup_s"] = time.monotonic() - t0
        out["stat_count"] = count
        out["list_lines"] = listing.count(b"\r\n") - 1 if listing else 0
        out["uidl_lines"] = uidl.count(b"\r\n") - 1 if uidl else 0
        t1 = time.monotonic()
        before = c.received
        fetched = 0
        for n in range(1, min(count, retr_limit) + 1):
            if time.monotonic() > deadline:
                break
            c.multi(f"RETR {n}")
            fetched += 1
        out["retr_s"] = time.monotonic() - t1
        out["retr_msgs"] = fetched
        out["retr_bytes"] = c.received - before
        c.simple("QUIT")
    except (ProtocolError, OSError) as exc:
        out["error"] = repr(exc)[:200]
    finally:
        c.close()


def run_case(target: Target, addresses: list[str], retr_limit: int, time_limit: float) -> dict:
    deadline = time.monotonic() + time_limit
    results = [{} for _ in addresses]
    threads = [threading.Thread(target=_session, args=(target, a, retr_limit, deadline, r), daemon=True)
               for a, r in zip(addresses, results)]
    cpu_before = cpu_by_process(target.cpu_roots)
    client_before = time.process_time()  # the generator's own CPU: it shares the machine
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(time_limit + 120)
    wall = time.monotonic() - start
    spent = cpu_spent(cpu_before, cpu_by_process(target.cpu_roots))
    cpu = sum(spent.values())
    client_cpu = time.process_time() - client_before
    errors = [r["error"] for r in results if "error" in r]
    ok = [r for r in results if "retr_s" in r]
    msgs = sum(r["retr_msgs"] for r in ok)
    nbytes = sum(r["retr_bytes"] for r in ok)
    # Throughput over the RETR phase only: from the first session's first RETR to the last
    # session's last reply, approximated by the longest RETR phase (they run concurrently).
    retr_wall = max((r["retr_s"] for r in ok), default=0.0)
    return {
        "users": len(addresses),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "maildrop_messages": ok[0]["stat_count"] if ok else None,
        "uidl_lines": ok[0]["uidl_lines"] if ok else None,
        "startup_ms": round(max(r["startup_s"] for r in ok) * 1000, 1) if ok else None,
        "retr_msgs": msgs,
        "retr_msgs_per_s": round(msgs / retr_wall, 1) if retr_wall else None,
        "retr_mb_per_s": round(nbytes / retr_wall / 1e6, 2) if retr_wall else None,
        "wall_s": round(wall, 2),
        # whole sessions (login to QUIT) per message retrieved
        "server_cpu_ms": round(1000 * cpu / msgs, 3) if target.cpu_roots and msgs else None,
        "server_cpu_ms_by_process": {name: round(1000 * s / msgs, 4) for name, s in sorted(spent.items())}
        if target.cpu_roots and msgs else None,
        "client_cpu_ms": round(1000 * client_cpu / msgs, 4) if msgs else None,
    }


# Untimed logins per user and CPU after the warm-up pass (see warm_up).
LOGINS_PER_CPU = 8


def warm_up(target: Target, addresses: list[str], retr_limit: int, time_limit: float) -> None:
    """One untimed pass over every maildrop, so that index files (Dovecot), the page cache
    and the store's caches are as warm for the first timed case as for the last.

    Then a few more logins per user: a server of several processes (Kotakpos's workers) keeps
    its verified logins in each process, and the kernel hands each connection to any of them.
    A long-running server has seen every user's phone on every worker; one pass of one
    connection per user would leave the timed session a cold process, and a deliberately slow
    password hash, by chance. With LOGINS_PER_CPU connections per user and CPU (one worker per
    CPU by default), a worker misses a user with a chance of (1 - 1/CPUs) ** that."""
    run_case(target, addresses, retr_limit, time_limit)
    for address in addresses:
        for _ in range(LOGINS_PER_CPU * (os.cpu_count() or 1)):
            c = Pop3(target.host, target.pop3_port)
            try:
                c.login(address, target.password(address))
                c.simple("QUIT")
            finally:
                c.close()


def case(target: Target, addresses: list[str], retr_limit: int, time_limit: float) -> dict:
    """One timed row: len(addresses) users at once."""
    n = len(addresses)
    row = {"case": f"{n} user{'s' if n > 1 else ''}", **run_case(target, addresses, retr_limit, time_limit)}
    print(f"  pop3 {target.name:16} {row['case']:8} startup {row['startup_ms']} ms  "
          f"RETR {row['retr_msgs_per_s']} msg/s {row['retr_mb_per_s']} MB/s  errors {row['errors']}", flush=True)
    return row


def run(target: Target, addresses: list[str], user_counts=(1, 8), retr_limit: int = 10_000,
        time_limit: float = 60.0) -> list[dict]:
    warm_up(target, addresses[: max(user_counts)], retr_limit, time_limit)
    return [case(target, addresses[:n], retr_limit, time_limit) for n in user_counts]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--pop3-port", type=int, required=True)
    ap.add_argument("--user", action="append", required=True, help="ADDRESS:PASSWORD, once per maildrop")
    ap.add_argument("--name", default="target")
    ap.add_argument("--time-limit", type=float, default=60.0)
    args = ap.parse_args(argv)
    users = [tuple(u.split(":", 1)) for u in args.user]
    target = Target(args.name, args.host, pop3_port=args.pop3_port, users=users)
    counts = tuple(n for n in (1, 8) if n <= len(users))
    print(json.dumps(run(target, [u for u, _ in users], counts, time_limit=args.time_limit), indent=2))


if __name__ == "__main__":
    main()
