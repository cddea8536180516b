"""IMAP on a big mailbox, and many idle clients.

On a user whose INBOX holds the bulk-loaded mailbox (10,000 messages by default):
- LOGIN+SELECT: connect, LOGIN, SELECT INBOX (median of several);
- `UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)`: what a client does to list a folder;
- full-body FETCH: `UID FETCH a:b BODY.PEEK[]` in batches of 500, MB/s;
- `UID SEARCH TEXT <word>`: a word that is in 1 message of 100 (the answer count is checked).
`sort_figures`: `UID SORT` by SUBJECT, FROM, DATE, ARRIVAL and SIZE and `UID THREAD REFERENCES`
of the whole mailbox (RFC 5256), each a median of several after an untimed first run; then
each of them again, each time right after a new message was appended (what a client
sees when it re-sorts a folder because mail came in).
`mixed_writers`: 10 clients on one mailbox at once, each repeating a round of what a
mail client does while others work on the same folder: APPEND a message, set and clear
\Flagged on one of the mailbox's messages (UID STORE), NOOP to hear the others' changes, and
every fifth round delete its own latest message (UID STORE \Deleted, UID EXPUNGE); the
average time of the write commands (APPEND, STORE, EXPUNGE), and every NO/BAD counted.
Then IDLE: `connections` clients log in (spread over a few users), SELECT INBOX and IDLE; we
record the server's resident memory, deliver one message to all those users at once (LMTP for
Dovecot, SMTP for Kotakpos: the entry point whose acknowledgement means committed), and time
how long each idler waits for its `* n EXISTS`, counted from that acknowledgement.

    python -m bench.imap_load --imap-port 1143 --user u0@bench.test:pw
"""

import argparse
import json
import random
import re
import selectors
import smtplib
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.messages import NEEDLE, NEEDLE_EVERY, make_message
from bench.peers import cpu_by_process, cpu_spent, memory_kib
from bench.wire import Imap, ProtocolError, Target, percentiles


def _median_time(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.monotonic()
        result = fn()
        times.append(time.monotonic() - t0)
    return statistics.median(times), result


# The figure that decides which of several runs of a row was the least disturbed.
MAIN_METRIC = {"LOGIN+SELECT": ("ms", False), "UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)": ("ms", False),
               "full-body FETCH": ("mb_per_s", True), "UID SEARCH TEXT": ("ms", False)}


def mailbox_figures(target: Target, address: str, repeat: int = 5, time_limit: float = 60.0) -> list[dict]:
    password = target.password(address)
    rows = []

    def login_select() -> int:
        c = Imap(target.host, target.imap_port)
        try:
            c.login(address, password)
            for line in c.command("SELECT INBOX"):
                if line.endswith(b"EXISTS\r\n"):
                    return int(line.split()[1])
            raise ProtocolError("SELECT without EXISTS")
        finally:
            c.logout()

    login_select()  # warm-up: Dovecot builds its index on the first SELECT of a Maildir
    secs, exists = _median_time(login_select, repeat)
    rows.append({"case": "LOGIN+SELECT", "ms": round(secs * 1000, 2), "messages": exists})

    c = Imap(target.host, target.imap_port)
    try:
        c.login(address, password)
        c.command("SELECT INBOX")

        def fetch_meta() -> int:
            count = 0

            def seen(line: bytes) -> None:
                nonlocal count
                count += b" FETCH " in line
            c.command("UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)", on_untagged=seen)
            return count

        fetch_meta()  # warm-up: Dovecot fills its cache file with envelopes on first request
        secs, fetched = _median_time(fetch_meta, repeat)
        rows.append({"case": "UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)", "ms": round(secs * 1000, 1),
                     "messages": fetched})

        uids = []
        for line in c.command("UID SEARCH ALL"):
            if line.startswith(b"* SEARCH"):
                uids = [int(u) for u in line.split()[2:]]
        batch = 500
        deadline = time.monotonic() + time_limit
        before, bodies, t0 = c.received, 0, time.monotonic()

        def body_seen(line: bytes) -> None:
            nonlocal bodies
            bodies += b" FETCH " in line[:40]
        for i in range(0, len(uids), batch):
            if time.monotonic() > deadline:
                break
            c.command(f"UID FETCH {uids[i]}:{uids[min(i + batch, len(uids)) - 1]} BODY.PEEK[]",
                      on_untagged=body_seen)
        secs = time.monotonic() - t0
        nbytes = c.received - before
        rows.append({"case": "full-body FETCH", "mb_per_s": round(nbytes / secs / 1e6, 2),
                     "msgs_per_s": round(bodies / secs, 1), "messages": bodies})

        def search() -> int:
            for line in c.command(f"UID SEARCH TEXT {NEEDLE}"):
                if line.startswith(b"* SEARCH"):
                    return len(line.split()) - 2
            return 0
        secs, hits = _median_time(search, max(1, repeat // 2))
        rows.append({"case": "UID SEARCH TEXT", "ms": round(secs * 1000, 1), "messages": hits,
                     "expected": -(-exists // NEEDLE_EVERY)})
    finally:
        c.logout()
    for r in rows:
        print(f"  imap {target.name:16} {r}", flush=True)
    return rows


SORT_CASES = {
    "UID SORT (SUBJECT)": "UID SORT (SUBJECT) UTF-8 ALL",
    "UID SORT (FROM)": "UID SORT (FROM) UTF-8 ALL",
    "UID SORT (DATE)": "UID SORT (DATE) UTF-8 ALL",
    "UID SORT (ARRIVAL)": "UID SORT (ARRIVAL) UTF-8 ALL",
    "UID SORT (SIZE)": "UID SORT (SIZE) UTF-8 ALL",
    "UID THREAD REFERENCES": "UID THREAD REFERENCES UTF-8 ALL",
}


def sort_figures(target: Target, address: str, repeat: int = 5) -> list[dict]:
    """Time each of SORT_CASES on the big mailbox; the answer must name every message.

    The first run of each is untimed: Dovecot fills its cache file (and thread index) then,
    as it does once for any mailbox a client sorts.
    """
    rows = []
    c = Imap(target.host, target.imap_port)
    try:
        c.login(address, target.password(address))
        exists = 0
        for line in c.command("SELECT INBOX"):
            if line.endswith(b"EXISTS\r\n"):
                exists = int(line.split()[1])

        for case, command in SORT_CASES.items():
            def run() -> int:
                found = 0
                for line in c.command(command):
                    if line.startswith((b"* SORT", b"* THREAD")):
                        found = len(re.findall(rb"\d+", line))
                return found
            run()
            secs, found = _median_time(run, repeat)
            if found != exists:
                raise ProtocolError(f"{case}: {found} messages in the answer, {exists} in the mailbox")
            rows.append({"case": case, "ms": round(secs * 1000, 2), "messages": found})

        for case in SORT_CASES:
            times = []
            for i in range(repeat):
                raw = make_message(900_000 + i, 2048, needle=False)
                told = c.command(f"APPEND INBOX {{{len(raw)}+}}\r\n" + raw.decode("ascii"))
                for line in told + c.command("NOOP"):
                    if line.endswith(b"EXISTS\r\n"):
                        exists = int(line.split()[1])
                t0 = time.monotonic()
                found = sum(len(re.findall(rb"\d+", line)) for line in c.command(SORT_CASES[case])
                            if line.startswith((b"* SORT", b"* THREAD")))
                times.append(time.monotonic() - t0)
                if found != exists:
                    raise ProtocolError(f"{case}: {found} messages in the answer, {exists} in the mailbox")
            rows.append({"case": f"after APPEND, {case}", "ms": round(statistics.median(times) * 1000, 2),
                         "messages": exists})
    finally:
        c.logout()
    for r in rows:
        print(f"  sort {target.name:16} {r}", flush=True)
    return rows


WRITES = ("APPEND", "STORE", "EXPUNGE")
APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")


def mixed_writers(target: Target, address: str, clients: int = 10, rounds: int = 50,
                  time_limit: float = 60.0) -> dict:
    """Write-command latency with `clients` sessions changing one mailbox at once (see the module doc)."""
    password = target.password(address)
    times: dict[str, list[float]] = {verb: [] for verb in WRITES}
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit

    def timed(c: Imap, verb: str, text: str) -> bytes:
        t0 = time.monotonic()
        c.command(text)
        elapsed = time.monotonic() - t0
        with lock:
            times[verb].append(elapsed)
        return c.completion

    def client(i: int) -> None:
        rnd = random.Random(i)  # the same commands on both sides
        c = None
        try:
            c = Imap(target.host, target.imap_port)
            c.login(address, password)
            uidnext = UIDNEXT.search(b"".join(c.command("SELECT INBOX")))
            if not uidnext:
                raise ProtocolError("SELECT without UIDNEXT")
            existing = int(uidnext.group(1)) - 1
            for n in range(rounds):
                if time.monotonic() > deadline:
                    break
                raw = make_message(1_000_000 + i * rounds + n, 2048, needle=False).decode("ascii")
                done = timed(c, "APPEND", f"APPEND INBOX (\\Seen) {{{len(raw)}+}}\r\n{raw}")
                mine = APPENDUID.search(done)
                uid = rnd.randint(1, existing)
                timed(c, "STORE", f"UID STORE {uid} +FLAGS (\\Flagged)")
                timed(c, "STORE", f"UID STORE {uid} -FLAGS (\\Flagged)")
                c.command("NOOP")
                if n % 5 == 4 and mine:
                    timed(c, "STORE", f"UID STORE {int(mine.group(1))} +FLAGS (\\Deleted)")
                    timed(c, "EXPUNGE", f"UID EXPUNGE {int(mine.group(1))}")
            c.command("LOGOUT")
        except (ProtocolError, OSError) as exc:
            with lock:
                errors.append(repr(exc)[:200])
        finally:
            if c is not None:
                c.close()

    cpu_before = cpu_by_process(target.cpu_roots)
    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(time_limit + 60)
    wall = time.monotonic() - start
    spent = cpu_spent(cpu_before, cpu_by_process(target.cpu_roots))
    every = [x for verb in WRITES for x in times[verb]]
    row = {
        "case": f"{clients} mixed clients, one mailbox",
        "write_commands": len(every),
        "write_avg_ms": round(1000 * statistics.fmean(every), 2) if every else None,
        **{f"{verb.lower()}_avg_ms": round(1000 * statistics.fmean(times[verb]), 2) if times[verb] else None
           for verb in WRITES},
        "write_p99_ms": percentiles(every)["p99_ms"],
        "protocol_errors": len(errors),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "wall_s": round(wall, 2),
        # per write command, the NOOPs and logins included
        "server_cpu_ms": round(1000 * sum(spent.values()) / len(every), 3) if target.cpu_roots and every else None,
        "server_cpu_ms_by_process": {name: round(1000 * s / len(every), 3) for name, s in sorted(spent.items())}
        if target.cpu_roots and every else None,
    }
    print(f"  imap {target.name:26} {row['case']}: write avg {row['write_avg_ms']} ms "
          f"(APPEND {row['append_avg_ms']}, STORE {row['store_avg_ms']}, EXPUNGE {row['expunge_avg_ms']}) "
          f"p99 {row['write_p99_ms']} ms  errors {row['protocol_errors']} {row['first_error'] or ''}", flush=True)
    return row


def deliver_one(target: Target, rcpts: list[str]) -> float:
    """Deliver one message to every rcpt in one transaction; the monotonic time of the ack."""
    raw = make_message(999_999, 2048, needle=False)
    if target.deliver_proto == "lmtp":
        client = smtplib.LMTP(target.host, target.deliver_port, timeout=60)
    else:
        client = smtplib.SMTP(target.host, target.deliver_port, timeout=60)
    with client:
        client.ehlo_or_helo_if_needed()
        client.mail("loadgen@bench.test")
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            if code != 250:
                raise ProtocolError(f"RCPT {rcpt}: {code} {text!r}")
        code, text = client.data(raw)
        # LMTP answers DATA once per recipient (RFC 2033 §4.2); smtplib reads only the first.
        replies = [code] + [client.getreply()[0] for _ in rcpts[1:]] if target.deliver_proto == "lmtp" else [code]
        ack = time.monotonic()
    if any(c != 250 for c in replies):
        raise ProtocolError(f"delivery refused: {replies}")
    return ack


def idle_figures(target: Target, addresses: list[str], connections: int = 1000,
                 timeout: float = 60.0) -> dict:
    """Memory with `connections` idlers and the delay until each hears of one delivery."""
    mem_before = memory_kib(target.server_pid) if target.server_pid else None

    def open_idler(i: int) -> Imap:
        address = addresses[i % len(addresses)]
        c = Imap(target.host, target.imap_port, timeout=timeout)
        c.login(address, target.password(address))
        c.command("SELECT INBOX")
        c.send(b"idle IDLE\r\n")
        line = c.readline()
        if not line.startswith(b"+"):
            raise ProtocolError(f"IDLE: {line!r}")
        return c

    idlers: list[Imap] = []
    errors: list[str] = []
    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        for fut in [pool.submit(open_idler, i) for i in range(connections)]:
            try:
                idlers.append(fut.result())
            except (ProtocolError, OSError) as exc:
                errors.append(repr(exc)[:200])
    setup_s = time.monotonic() - t0
    time.sleep(1.0)  # let the server settle before reading its memory
    mem_idle = memory_kib(target.server_pid) if target.server_pid else None

    sel = selectors.DefaultSelector()
    for c in idlers:
        sel.register(c.sock, selectors.EVENT_READ, c)
    pending = set(idlers)
    delays: list[float] = []
    closed = 0  # idlers the server hung up on before telling them
    ack = deliver_one(target, addresses)
    deadline = ack + timeout
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            c = key.data
            if c not in pending:
                continue
            try:
                c._fill()
            except (ProtocolError, OSError):
                closed += 1
                pending.discard(c)
                sel.unregister(c.sock)
                continue
            if b"EXISTS" in c.buf:
                # Told before we even read the ack counts as no delay at all.
                delays.append(max(0.0, time.monotonic() - ack))
                pending.discard(c)
                sel.unregister(c.sock)
    for c in idlers:
        try:
            c.send(b"DONE\r\nz LOGOUT\r\n")
        except OSError:
            pass
        c.close()
    sel.close()
    row = {
        "case": f"{connections} IDLE connections",
        "connected": len(idlers),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "setup_s": round(setup_s, 1),
        "told": len(delays),
        "not_told": len(idlers) - len(delays),
        "closed_by_server": closed,
        "push_p50_ms": percentiles(delays)["p50_ms"],
        "push_p99_ms": percentiles(delays)["p99_ms"],
        "push_max_ms": percentiles(delays)["max_ms"],
        "server_rss_mb": round(mem_idle["rss_kib"] / 1024, 1) if mem_idle else None,
        "server_pss_mb": round(mem_idle["pss_kib"] / 1024, 1) if mem_idle and mem_idle["pss_kib"] else None,
        "server_rss_before_mb": round(mem_before["rss_kib"] / 1024, 1) if mem_before else None,
        "server_processes": mem_idle["processes"] if mem_idle else None,
    }
    print(f"  imap {target.name:16} {row}", flush=True)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--imap-port", type=int, required=True)
    ap.add_argument("--user", required=True, help="ADDRESS:PASSWORD of the big mailbox")
    ap.add_argument("--idle-user", action="append", default=[], help="ADDRESS:PASSWORD for idlers")
    ap.add_argument("--deliver", help="lmtp:PORT or smtp:PORT for the IDLE push test")
    ap.add_argument("--server-pid", type=int)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--name", default="target")
    args = ap.parse_args(argv)
    big = tuple(args.user.split(":", 1))
    idle = [tuple(u.split(":", 1)) for u in args.idle_user]
    target = Target(args.name, args.host, imap_port=args.imap_port, users=[big, *idle],
                    server_pid=args.server_pid)
    rows = mailbox_figures(target, big[0]) + sort_figures(target, big[0])
    if idle and args.deliver:
        target.deliver_proto, port = args.deliver.split(":")
        target.deliver_port = int(port)
        rows.append(idle_figures(target, [u for u, _ in idle], args.connections))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
