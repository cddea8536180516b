"""Slowloris and connection floods: silent clients give their slots back, one address
cannot take them all, and a normal client is served while hundreds of connections sit open.

Idle timeouts are shortened in the config here so the test takes seconds; the defaults
are checked separately (60 s before login; the RFC minimums after login: POP3 10 min,
IMAP 30 min, SMTP 5 min per command).
"""

from __future__ import annotations

import contextlib
import socket
import time

from appliance.config import Config
from appliance.net.registry import SYNC_SECONDS
from appliance.smtp import replies as R
from tests.conftest import PASSWORD
from tests.protocol.imapconv import Conversation, session
from tests.protocol.pop3_wire import Pop3Wire
from tests.protocol.smtp_wire import Wire, inbox


def silent(server, listener: str, source: str = "127.0.0.1") -> socket.socket:
    """A client that connects, reads the greeting, and then says nothing."""
    sock = socket.create_connection(server.address(listener), timeout=10, source_address=(source, 0))
    assert sock.recv(4096), "no greeting"
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server said before closing, or None if it kept the connection open."""
    sock.settimeout(seconds)
    said = b""
    try:
        while chunk := sock.recv(4096):
            said += chunk
    except (socket.timeout, TimeoutError):
        return None
    except ConnectionResetError:
        pass
    return said


def test_defaults_follow_the_issue_and_the_rfcs():
    config = Config()
    assert config.limits.idle_timeout_unauthenticated == 60
    assert config.pop3.idle_timeout >= 600 and config.imap.idle_timeout >= 1800
    assert config.smtp.command_timeout >= 300 and config.smtp.data_timeout >= 180


def test_silent_imap_and_pop3_clients_are_closed_before_login_but_not_after(make_server):
    server = make_server(limits={"idle_timeout_unauthenticated": 0.5})
    server.store.add_domain("example.org")
    server.add_user("alice@example.org")
    imap_loris, pop3_loris = silent(server, "imap"), silent(server, "pop3")
    imap_user = session(server, "alice@example.org")
    pop3_user = Pop3Wire.logged_in(server, "alice@example.org", PASSWORD)
    start = time.monotonic()
    assert closed_within(imap_loris, 5).startswith(b"* BYE")
    assert closed_within(pop3_loris, 5).startswith(b"-ERR")
    assert time.monotonic() - start < 3
    time.sleep(1.0)  # twice the pre-login timeout: logged-in users keep their connections
    imap_user.transact("OK", "NOOP")
    pop3_user.transact("NOOP", "+OK*")


def test_smtp_cuts_its_timeouts_when_connections_pile_up(make_server):
    # 20 slots, stress from 10 on: the first nine silent clients get RFC 5321's five
    # minutes, every later one the stress timeout.
    server = make_server(server={"max_connections": 20, "max_connections_per_ip": 20},
                         smtp={"stress_load": 0.5, "stress_timeout": 0.5})
    early = [silent(server, "smtp") for _ in range(9)]
    # each worker process counts the others' connections every SYNC_SECONDS
    time.sleep(0.2 + SYNC_SECONDS)
    late = [silent(server, "smtp") for _ in range(6)]
    for sock in late:
        said = closed_within(sock, 5)
        assert said is not None and said.startswith(b"421 4.4.2"), said
    for sock in early:
        assert closed_within(sock, 0.05) is None
    # With the pile gone, a client gets the full timeout again and is served normally.
    for sock in early[:4]:
        sock.close()
    deadline = time.monotonic() + 5
    while server.admin.status()["sessions"] > 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2 + SYNC_SECONDS)  # and every worker has counted it
    c = Wire.open(server)
    time.sleep(1.0)
    c.ehlo()
    c.transact(R.R221_BYE, "QUIT")
    for sock in early[4:]:
        sock.close()


def test_one_address_cannot_take_every_slot(make_server):
    # Loopback is not exempt from the per-address limit; only [auth] trusted_networks are.
    server = make_server(server={"max_connections_per_ip": 5}, auth={"trusted_networks": ["127.0.0.3/32"]})
    server.store.add_domain("example.org")
    server.add_user("alice@example.org")
    hogs = [silent(server, listener) for listener in ("imap", "pop3", "smtp", "imap", "pop3")]
    refused = socket.create_connection(server.address("imap"), timeout=5)
    assert closed_within(refused, 5).startswith(b"* BYE")
    refused = socket.create_connection(server.address("smtp"), timeout=5)
    assert closed_within(refused, 5).startswith(b"421 4.3.2")
    # Another address is served as usual, and a trusted network passes the limit.
    other = socket.create_connection(server.address("imap"), timeout=5, source_address=("127.0.0.2", 0))
    conv = Conversation(other)
    assert conv.greeting.startswith(b"* OK")
    conv.transact("OK", "NOOP")
    trusted = [silent(server, "imap", source="127.0.0.3") for _ in range(8)]
    for sock in hogs + trusted:
        sock.close()


def test_500_connections_and_a_normal_client_is_served_within_a_second(make_server):
    server = make_server(server={"max_connections_per_ip": 1000})
    server.store.add_domain("example.org")
    server.add_user("alice@example.org")
    listeners = ["smtp", "imap", "pop3", "submission"]
    with contextlib.ExitStack() as stack:
        crowd = []
        for n in range(500):
            sock = stack.enter_context(socket.create_connection(server.address(listeners[n % 4]), timeout=10))
            crowd.append(sock)
        for sock in crowd:  # every one of them was greeted: all 500 are being served at once
            assert sock.recv(4096)
        # another worker's sessions are listed as it last published them
        deadline = time.monotonic() + 10
        while server.admin.status()["sessions"] < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.admin.status()["sessions"] >= 500

        start = time.monotonic()
        c = Wire.open(server)
        c.ehlo()
        c.transact(R.R250_SENDER_OK, "MAIL FROM:<friend@client.test>")
        c.transact(R.R250_RCPT_OK, "RCPT TO:<alice@example.org>")
        c.transact(R.R354_START_DATA, "DATA")
        c.send_raw(b"Subject: still served\r\n\r\nhello\r\n.\r\n")
        c.expect("250 *")
        smtp_time = time.monotonic() - start
        start = time.monotonic()
        conv = session(server, "alice@example.org")
        conv.transact("OK", "SELECT INBOX")
        fetched = conv.transact("OK", "FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
        imap_time = time.monotonic() - start
    assert b"still served" in b"".join(fetched)
    assert len(inbox(server, "alice@example.org")) == 1
    print(f"\n500 connections open: a message sent in {smtp_time:.2f}s, IMAP login+SELECT+FETCH in {imap_time:.2f}s")
    assert smtp_time < 1.0 and imap_time < 1.0
