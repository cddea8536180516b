"""Relay rate: queued mail delivered to an aiosmtpd sink on loopback.

`messages` 4 KiB messages, each to one recipient in one of 10 destination domains
(d0.relay.test … d9.relay.test), are submitted over SMTP by 8 clients to the target, which
must relay each domain to its own sink port (10 sinks = 10 destinations, all aiosmtpd on
127.0.0.1). The sinks answer 250 at once and count what they receive. Two modes:

- after-outage: the sinks are down while the mail is submitted, so every message is tried,
  refused and deferred; then the sinks come up and the queue is flushed (Postfix: postqueue
  -f; Kotakpos: the admin API's queue_retry). The clock starts at the flush: the pure drain
  rate of a full queue, 1,000 messages to 10 destinations;
- streaming: sinks up; the clock starts at the first submission and stops when the sinks
  have everything.

    python -m bench.relay_load --sink-only   # print sink ports, to configure a target by hand
"""

import argparse
import itertools
import smtplib
import threading
import time

from aiosmtpd.controller import Controller

from bench.peers import free_port
from bench.smtp_load import _Messages

DESTINATIONS = [f"d{i}.relay.test" for i in range(10)]


class Sink:
    """aiosmtpd receivers, one port per destination domain, counting recipients delivered."""

    def __init__(self, domains: list[str] = DESTINATIONS):
        self.domains = domains
        self.count = 0
        self.last_arrival = 0.0
        self.lock = threading.Lock()
        self.controllers = []
        # Ports are chosen now, so targets can be configured before the sinks start.
        self.routes = {domain: ("127.0.0.1", free_port()) for domain in domains}

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += len(envelope.rcpt_tos)
            self.last_arrival = time.monotonic()
        return "250 2.0.0 OK"

    def start(self) -> None:
        if self.controllers:
            return
        for domain in self.domains:
            c = Controller(self, hostname="127.0.0.1", port=self.routes[domain][1], ready_timeout=10)
            c.start()
            self.controllers.append(c)

    def stop(self) -> None:
        for c in self.controllers:
            c.stop()
        self.controllers = []

    def __enter__(self) -> "Sink":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait(self, expected: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.count >= expected:
                    return True
            time.sleep(0.01)
        return False


def submit(host: str, port: int, messages: int, clients: int = 8, time_limit: float = 120.0) -> int:
    """Submit `messages` 4 KiB messages round-robin over the destinations; returns accepted."""
    bodies = {d: _Messages(4096, f"user@{d}") for d in DESTINATIONS}
    counter = itertools.count()
    accepted = []
    deadline = time.monotonic() + time_limit

    def client() -> None:
        n = 0
        with smtplib.SMTP(host, port, local_hostname="loadgen.bench.test", timeout=60) as s:
            while (i := next(counter)) < messages and time.monotonic() < deadline:
                domain = DESTINATIONS[i % len(DESTINATIONS)]
                s.sendmail("loadgen@bench.test", [f"user{i}@{domain}"], bodies[domain].get(i))
                n += 1
        accepted.append(n)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(time_limit + 60)
    return sum(accepted)


def run(name: str, sink: Sink, smtp_port: int, messages: int = 1000, flush=None, deferred=None,
        timeout: float = 300.0) -> dict:
    """One relay run against a target already routing DESTINATIONS to sink.routes.

    With flush and deferred (callables: start delivering everything queued now; how many
    messages wait after a failed attempt) the run is in after-outage mode, else streaming.
    """
    outage = flush is not None
    if outage:
        sink.stop()
    else:
        sink.start()
    base = sink.count
    t0 = time.monotonic()
    accepted = submit("127.0.0.1", smtp_port, messages)
    submit_s = time.monotonic() - t0
    if outage:
        deadline = time.monotonic() + 120
        while deferred() < accepted and time.monotonic() < deadline:
            time.sleep(0.1)
        waiting = deferred()
        sink.start()
        t0 = time.monotonic()
        flush()
    ok = sink.wait(base + accepted, timeout)
    drain_s = (sink.last_arrival if ok else time.monotonic()) - t0
    delivered = sink.count - base
    row = {
        "case": f"{messages} x 4KiB to {len(DESTINATIONS)} destinations ({'after outage' if outage else 'streaming'})",
        "accepted": accepted,
        "delivered": delivered,
        "submit_s": round(submit_s, 2),
        "relay_s": round(drain_s, 2),
        "relay_msgs_per_s": round(delivered / drain_s, 1) if drain_s > 0 and delivered else None,
    }
    if outage:
        row["deferred_before_flush"] = waiting
    print(f"  relay {name:16} {row}", flush=True)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sink-only", action="store_true")
    ap.add_argument("--smtp-port", type=int, help="a target already routing to the printed sink ports")
    ap.add_argument("--messages", type=int, default=1000)
    args = ap.parse_args(argv)
    with Sink() as sink:
        for domain, (h, p) in sink.routes.items():
            print(f"{domain} = \"{h}:{p}\"")
        if args.sink_only:
            input("sinks running; press Enter to stop\n")
        elif args.smtp_port:
            run("target", sink, args.smtp_port, args.messages)


if __name__ == "__main__":
    main()
