"""SMTP accept rate, latency and end-to-end visibility.

For each cell (message size × concurrent clients × connection reuse) N client threads send
messages over real SMTP to the target until `count` messages are accepted or `time_limit`
passes. Reported: accepted messages/s, p50/p99 latency of one message (from MAIL FROM — or from
connect when connections are not reused — to the 250 after the final dot), and the end-to-end
time from the first MAIL until IMAP STATUS on the recipient's INBOX shows every accepted
message (Postfix → LMTP → Dovecot against Kotakpos's own delivery). When the target names its
process trees (Target.cpu_roots), also the servers' CPU time per accepted message over the same span.

The client speaks the conversation smtplib's ``sendmail`` does (EHLO once per connection; MAIL FROM with
SIZE=, RCPT TO, DATA, the dot-stuffed message, each waiting for its reply; QUIT when connections are not
reused) but reads replies in blocks like bench/wire.py's clients, so the generator's own CPU stays small
next to the servers' on the machine they share.

    python -m bench.smtp_load --smtp-port 2525 --imap-port 1143 --user u@bench.test:pw
"""

import argparse
import itertools
import json
import threading
import time

from bench.messages import DOMAIN, make_message
from bench.peers import cpu_by_process, cpu_spent
from bench.wire import ProtocolError, Target, Wire, imap_status_messages, percentiles, wait_for_messages

CLIENT_NAME = "loadgen.bench.test"

SIZES = {"4KiB": 4096, "100KiB": 100 * 1024}


class _Messages:
    """Unique messages of one size, cheap to make: a shared body behind a per-index header."""

    def __init__(self, size: int, rcpt: str):
        whole = make_message(0, size, rcpt=rcpt, needle=False)
        self.body = whole[whole.index(b"\r\n\r\n") + 4:]
        self.rcpt = rcpt

    def get(self, index: int) -> bytes:
        # A distinct Message-ID and Subject per message, so no server can store duplicates once.
        head = (f"From: <loadgen@{DOMAIN}>\r\nTo: <{self.rcpt}>\r\n"
                f"Subject: smtp load {index} {time.time_ns()}\r\n"
                f"Message-ID: <load.{index}.{time.time_ns()}@{DOMAIN}>\r\n"
                "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\n").encode()
        return head + self.body


class Smtp(Wire):
    """A plain SMTP client: one command, then its (possibly multi-line) reply."""

    def __init__(self, host: str, port: int, timeout: float = 60.0):
        super().__init__(host, port, timeout)
        try:
            self.expect(b"220")
            self.command(b"EHLO " + CLIENT_NAME.encode(), b"250")
        except BaseException:
            self.close()
            raise

    def reply(self) -> bytes:
        """The last line of the next reply (RFC 5321 §4.2.1: "code-" lines continue it)."""
        while True:
            line = self.readline()
            if line[3:4] != b"-":
                return line

    def expect(self, code: bytes) -> None:
        line = self.reply()
        if not line.startswith(code):
            raise ProtocolError(f"expected {code.decode()}, got {line[:200]!r}")

    def command(self, line: bytes, code: bytes) -> None:
        self.send(line + b"\r\n")
        self.expect(code)

    def sendmail(self, sender: str, rcpt: str, message: bytes) -> None:
        """smtplib's sendmail for one recipient, for a message that ends in CRLF."""
        self.command(f"MAIL FROM:<{sender}> SIZE={len(message)}".encode(), b"250")
        self.command(f"RCPT TO:<{rcpt}>".encode(), b"250")
        self.command(b"DATA", b"354")
        self.send((b"\r\n" + message).replace(b"\r\n.", b"\r\n..")[2:] + b".\r\n")
        self.expect(b"250")

    def quit(self) -> None:
        try:
            self.command(b"QUIT", b"221")
        finally:
            self.close()


def run_cell(target: Target, size: int, clients: int, reuse: bool, count: int, time_limit: float,
             rcpt: str, e2e_timeout: float = 120.0) -> dict:
    """One cell of the table; returns its measurements."""
    messages = _Messages(size, rcpt)
    baseline = imap_status_messages(target, rcpt) if target.imap_port else None
    cpu_before = cpu_by_process(target.cpu_roots)
    client_before = time.process_time()  # the generator's own CPU: it shares the machine
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    start = time.monotonic()
    deadline = start + time_limit

    def take() -> int | None:
        i = next(counter)
        return i if i < count and time.monotonic() < deadline else None

    def send_one(smtp: Smtp, i: int) -> None:
        smtp.sendmail(f"loadgen@{DOMAIN}", rcpt, messages.get(i))

    def client() -> None:
        mine: list[float] = []
        try:
            if reuse:
                smtp = Smtp(target.host, target.smtp_port)
                try:
                    while (i := take()) is not None:
                        t0 = time.monotonic()
                        send_one(smtp, i)
                        mine.append(time.monotonic() - t0)
                    smtp.quit()
                finally:
                    smtp.close()
            else:
                while (i := take()) is not None:
                    t0 = time.monotonic()
                    smtp = Smtp(target.host, target.smtp_port)
                    try:
                        send_one(smtp, i)
                        mine.append(time.monotonic() - t0)
                        smtp.quit()
                    finally:
                        smtp.close()
        except (ProtocolError, OSError) as exc:
            with lock:
                errors.append(repr(exc)[:200])
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(time_limit + 120)
    accept_s = time.monotonic() - start
    accepted = len(latencies)
    row = {
        "accepted": accepted,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(accept_s, 3),
        "msgs_per_s": round(accepted / accept_s, 1) if accepted else 0.0,
        **percentiles(latencies),
    }
    if baseline is not None and accepted:
        seen = wait_for_messages(target, rcpt, baseline + accepted, e2e_timeout)
        # Counted from the first MAIL: includes the accepting, so it is what a user waits.
        row["e2e_s"] = round(accept_s + seen, 3) if seen is not None else None
        row["e2e_msgs_per_s"] = round(accepted / (accept_s + seen), 1) if seen is not None else None
    if target.cpu_roots and accepted:
        # Up to the moment every message is visible (when measured): the whole path's work,
        # also what a peer does after its 250 (Postfix's delivery over LMTP into Dovecot).
        spent = cpu_spent(cpu_before, cpu_by_process(target.cpu_roots))
        row["server_cpu_ms"] = round(1000 * sum(spent.values()) / accepted, 3)
        row["server_cpu_ms_by_process"] = {name: round(1000 * s / accepted, 3) for name, s in sorted(spent.items())}
    if accepted:
        row["client_cpu_ms"] = round(1000 * (time.process_time() - client_before) / accepted, 3)
    return row


def run(target: Target, rcpt: str, sizes=("4KiB", "100KiB"), clients=(1, 8, 32), reuse=(True, False),
        counts: dict | None = None, time_limit: float = 30.0) -> list[dict]:
    """The whole SMTP table for one target; each row has a `case` key shared across targets."""
    counts = counts or {"4KiB": 500, "100KiB": 200}
    rows = []
    for size_name in sizes:
        for n in clients:
            for r in reuse:
                case = f"{size_name} c={n} {'reuse' if r else 'new-conn'}"
                row = run_cell(target, SIZES[size_name], n, r, counts[size_name], time_limit, rcpt)
                rows.append({"case": case, **row})
                print(f"  smtp {target.name:16} {case:24} {row['msgs_per_s']:8} msg/s "
                      f"p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  e2e {row.get('e2e_s')} s",
                      flush=True)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--smtp-port", type=int, required=True)
    ap.add_argument("--imap-port", type=int, help="for the end-to-end figure")
    ap.add_argument("--user", required=True, help="recipient ADDRESS:PASSWORD")
    ap.add_argument("--name", default="target")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--time-limit", type=float, default=30.0)
    args = ap.parse_args(argv)
    address, password = args.user.split(":", 1)
    target = Target(args.name, args.host, smtp_port=args.smtp_port, imap_port=args.imap_port,
                    users=[(address, password)])
    rows = run(target, address, counts={"4KiB": args.count, "100KiB": max(1, args.count // 2)},
               time_limit=args.time_limit)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
