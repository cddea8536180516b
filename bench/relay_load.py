"""Relay rate: queued mail delivered to an aiosmtpd sink on loopback.

`messages` 4 KiB messages, each to one recipient in one of `destinations` domains
(d0.relay.test … d9.relay.test), are submitted over SMTP to the target, which must relay each
domain to its own sink port (10 sinks = 10 destinations, all aiosmtpd on 127.0.0.1). Two modes:

- held: the target keeps the mail queued until released (Postfix: defer_transports + postqueue
  -f); the clock starts at the release, so the figure is the pure queue drain rate;
- streaming: the clock starts at the first submission and stops when the sink has everything.

The sinks answer 250 at once and count what they receive.

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
        self.routes: dict[str, tuple[str, int]] = {}

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += len(envelope.rcpt_tos)
            self.last_arrival = time.monotonic()
        return "250 2.0.0 OK"

    def __enter__(self) -> "Sink":
        for domain in self.domains:
            port = free_port()
            c = Controller(self, hostname="127.0.0.1", port=port, ready_timeout=10)
            c.start()
            self.controllers.append(c)
            self.routes[domain] = ("127.0.0.1", port)
        return self

    def __exit__(self, *exc) -> None:
        for c in self.controllers:
            c.stop()

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


def run(name: str, sink: Sink, smtp_port: int, messages: int = 1000, hold=None, release=None,
        queued=None, timeout: float = 300.0) -> dict:
    """One relay run against a target already routing DESTINATIONS to sink.routes.

    hold/release/queued: callables for held mode (release() starts the drain, queued() says how
    many messages wait); without them the run is in streaming mode.
    """
    base = sink.count
    held = release is not None
    t0 = time.monotonic()
    accepted = submit("127.0.0.1", smtp_port, messages)
    submit_s = time.monotonic() - t0
    if held:
        deadline = time.monotonic() + 60
        while queued() < accepted and time.monotonic() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        release()
    ok = sink.wait(base + accepted, timeout)
    drain_s = (sink.last_arrival if ok else time.monotonic()) - t0
    delivered = sink.count - base
    row = {
        "case": f"{messages} x 4KiB to {len(DESTINATIONS)} destinations ({'held' if held else 'streaming'})",
        "accepted": accepted,
        "delivered": delivered,
        "submit_s": round(submit_s, 2),
        "relay_s": round(drain_s, 2),
        "relay_msgs_per_s": round(delivered / drain_s, 1) if drain_s > 0 else None,
    }
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
