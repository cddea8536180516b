"""Many clients idling at once are all told of a delivery promptly."""

import selectors
import time

from tests.protocol.imapconv import deliver, idler, message

IDLERS = 100


def test_hundred_idlers_all_hear_of_new_mail(make_server):
    # plaintext on loopback and room for many connections from one address: the test is about IDLE
    srv = make_server(auth={"allow_plaintext": True}, server={"max_connections_per_ip": 500})
    srv.store.add_domain("example.org")
    srv.add_user("alice@example.org")
    idlers = [idler(srv) for _ in range(IDLERS)]
    selector = selectors.DefaultSelector()
    for conv in idlers:
        selector.register(conv.sock, selectors.EVENT_READ, conv)
    deliver(srv, "alice@example.org", message("for everyone"))
    committed = time.monotonic()
    told = {}
    while len(told) < IDLERS and time.monotonic() - committed < 10:
        for key, _ in selector.select(timeout=1):
            conv = key.data
            if conv not in told and conv.line() == b"* 1 EXISTS":
                told[conv] = time.monotonic() - committed
    assert len(told) == IDLERS
    slowest = max(told.values())
    # the benchmark holds the 100 ms goal on a quiet machine; a shared CI box gets slack
    assert slowest < 1.0, slowest
    for conv in idlers:
        conv.send("DONE")
    for conv in idlers:
        _, tagged = conv.read_until("i")
        assert tagged.startswith(b"i OK")
