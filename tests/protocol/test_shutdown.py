"""Stopping the server: every session waiting for a command gets its protocol's goodbye,
over plain and TLS connections, and a client arriving meanwhile is refused cleanly."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from tests.mda_helpers import wait_for
from tests.protocol.imapconv import Conversation, session


pytestmark = pytest.mark.in_process(reason="they watch the server's session registry and listening sockets as it stops")

ALICE = "alice@example.org"

GOODBYES = {  # listener -> the last line the client reads before the connection ends
    "imap": b"* BYE [UNAVAILABLE] Server shutting down\r\n",
    "imaps": b"* BYE [UNAVAILABLE] Server shutting down\r\n",
    "pop3": b"-ERR [SYS/TEMP] Server shutting down, try again later\r\n",
    "pop3s": b"-ERR [SYS/TEMP] Server shutting down, try again later\r\n",
    "smtp": b"421 4.3.2 Service shutting down, try again later\r\n",
    "smtps": b"421 4.3.2 Service shutting down, try again later\r\n",
    "managesieve": b'BYE (TRYLATER) "Server shutting down, try again later"\r\n',
}


def greeted(server, listener: str) -> socket.socket:
    sock = server.connect(listener)
    if listener.endswith("s"):
        sock = server.tls_context().wrap_socket(sock, server_hostname="mail.example.org")
    assert sock.recv(4096)  # the greeting
    return sock


def rest_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_every_waiting_session_gets_its_goodbye_when_the_server_stops(make_server):
    server = make_server()
    clients = {listener: greeted(server, listener) for listener in GOODBYES}
    imap_user = session(server, ALICE, "imaps")  # logged in, a mailbox selected
    imap_user.transact("OK", "SELECT INBOX")
    wait_for(lambda: all(conn.waiting_for_command for conn in server.ctx.registry.connections())
             and server.ctx.registry.count() == len(GOODBYES) + 1, what="every session to wait for a command")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < server.config.server.shutdown_grace  # nobody waited for the grace
    for listener, sock in clients.items():
        assert rest_until_closed(sock).endswith(GOODBYES[listener]), listener
    assert imap_user.line() == GOODBYES["imaps"].rstrip(b"\r\n")


def tls_idler(server, listener: str) -> Conversation:
    """A client idling on INBOX over TLS (implicit, or STARTTLS on the plain port): every
    real mail client's IDLE is in TLS, as passwords are."""
    conv = Conversation.open(server, listener)
    if listener == "imap":
        conv.transact("OK", "STARTTLS")
        conv.sock = server.tls_context().wrap_socket(conv.sock, server_hostname="mail.example.org")
    conv.login(ALICE)
    conv.transact("OK", "SELECT INBOX")
    conv.send("i IDLE")
    assert conv.line() == b"+ idling"
    return conv


def test_idling_tls_clients_get_their_bye_at_once_when_the_server_stops(make_server):
    server = make_server(server={"shutdown_grace": 10.0})
    server.add_user(ALICE)
    idlers = {listener: tls_idler(server, listener) for listener in ("imaps", "imap")}
    wait_for(lambda: sum(conn.waiting_for_command for conn in server.ctx.registry.connections()) == 2,
             what="both clients to idle")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5.0  # nobody waited for the grace
    for listener, conv in idlers.items():
        assert conv.line() == GOODBYES["imaps"].rstrip(b"\r\n"), listener


def test_a_client_arriving_during_shutdown_is_refused_without_an_error_in_the_log(make_server, caplog,
                                                                                   monkeypatch):
    crashes = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    caplog.set_level(logging.INFO, logger="kotakpos")
    server = make_server(server={"hostname": "mail.example.org", "listen": ["127.0.0.1"], "shutdown_grace": 3.0})
    server.add_user(ALICE)
    busy = greeted(server, "smtp")  # inside DATA: the stop waits for it up to the grace
    for line in (b"EHLO client.test", b"MAIL FROM:<a@remote.test>", f"RCPT TO:<{ALICE}>".encode()):
        busy.sendall(line + b"\r\n")
        assert busy.recv(4096).startswith(b"250")
    busy.sendall(b"DATA\r\n")
    assert busy.recv(4096).startswith(b"354")
    address = server.address("imap")
    [listening] = next(l for l in server.server.connections.listeners if l.name == "imap").sockets
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    wait_for(lambda: listening.fileno() == -1, what="the listeners to close")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5).recv(4096)
    busy.close()
    stopper.join(10)
    assert not stopper.is_alive()
    assert crashes == []
    assert "Bad file descriptor" not in caplog.text and "Traceback" not in caplog.text
