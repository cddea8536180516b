"""The connection layer on its own, with a tiny echo protocol as the session."""

import socket
import ssl
import threading
import time

import pytest

from appliance.net import ConnectionServer, LineTooLong, SessionRegistry
from appliance.net.tls import TlsContexts
from appliance.store.runtime import Runtime


class Echo:
    """Greets, then answers each line with 'OK <line>'; 'TLS' upgrades; 'BIG' reads a 100 KB-limited line."""

    BUSY_REPLY = b"BUSY\r\n"

    def __init__(self, conn, ctx, listener):
        self.conn = conn

    def run(self):
        self.conn.write(b"HELLO\r\n")
        self.conn.flush()
        while True:
            try:
                line = self.conn.read_command_line(1000).rstrip(b"\r\n")
            except LineTooLong:
                self.conn.write(b"ERR too long\r\n")
                self.conn.flush()
                continue
            self.conn.note_command(line.decode())
            if line == b"TLS":
                self.conn.write(b"GO\r\n")
                self.conn.start_tls()
                continue
            if line == b"SLOW":
                time.sleep(1.0)
            self.conn.write(b"OK " + line + b"\r\n")
            if not self.conn.has_buffered_line():
                self.conn.flush()


@pytest.fixture
def echo_server(_certificate, tmp_path):
    made = []

    def make(max_connections=100, max_per_ip=100, exempt=lambda ip: False, session_class=Echo):
        registry = SessionRegistry(Runtime(tmp_path / f"echo{len(made)}.sqlite"))
        tls = TlsContexts(*_certificate)
        server = ConnectionServer(None, registry, tls.current, max_connections, max_per_ip, exempt)
        server.add("echo", ["127.0.0.1"], 0, session_class, implicit_tls=False)
        server.start()
        made.append(server)
        return server, registry

    yield make
    for server in made:
        server.stop(1.0)


def connect(server):
    sock = socket.create_connection(server.listeners[0].addresses[0], timeout=5)
    reader = sock.makefile("rb")
    assert reader.readline() == b"HELLO\r\n"
    return sock, reader


def test_pipelined_lines_are_answered_in_order_in_one_flush(echo_server):
    server, _ = echo_server()
    sock, reader = connect(server)
    sock.sendall(b"a\r\nb\r\nc\r\n")
    assert [reader.readline() for _ in range(3)] == [b"OK a\r\n", b"OK b\r\n", b"OK c\r\n"]


def test_an_overlong_line_gets_an_error_and_the_connection_goes_on(echo_server):
    server, _ = echo_server()
    sock, reader = connect(server)
    sock.sendall(b"x" * 100_000 + b"\r\nnext\r\n")
    assert reader.readline() == b"ERR too long\r\n"
    assert reader.readline() == b"OK next\r\n"
    other, other_reader = connect(server)  # and others are served meanwhile
    other.sendall(b"hi\r\n")
    assert other_reader.readline() == b"OK hi\r\n"


def test_starttls_discards_what_was_sent_before_the_handshake(echo_server, _certificate):
    server, _ = echo_server()
    sock, reader = connect(server)
    sock.sendall(b"TLS\r\nINJECTED\r\n")  # the injected line arrives in the same packet
    assert reader.readline() == b"GO\r\n"
    context = ssl.create_default_context(cafile=str(_certificate[0]))
    tls = context.wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"after\r\n")
    tls_reader = tls.makefile("rb")
    assert tls_reader.readline() == b"OK after\r\n"


def test_connections_past_the_limit_get_the_busy_reply(echo_server):
    server, registry = echo_server(max_connections=2)
    held = [connect(server), connect(server)]
    third = socket.create_connection(server.listeners[0].addresses[0], timeout=5)
    assert third.makefile("rb").readline() == b"BUSY\r\n"
    sock, reader = held.pop(0)
    reader.close()  # the reader holds the socket open too
    sock.close()
    deadline = time.time() + 5
    while registry.count() > 1 and time.time() < deadline:
        time.sleep(0.02)
    again, _ = connect(server)  # a freed slot is usable again


def test_one_address_cannot_take_more_than_its_share(echo_server):
    server, _ = echo_server(max_per_ip=2)
    held = [connect(server), connect(server)]
    third = socket.create_connection(server.listeners[0].addresses[0], timeout=5)
    assert third.makefile("rb").readline() == b"BUSY\r\n"
    trusted, _ = echo_server(max_per_ip=2, exempt=lambda ip: ip == "127.0.0.1")
    held += [connect(trusted) for _ in range(4)]  # a trusted network is not limited


def test_registry_tracks_sessions_and_kick_disconnects(echo_server):
    server, registry = echo_server()
    sock, reader = connect(server)
    sock.sendall(b"hello there\r\n")
    reader.readline()
    [info] = registry.list()
    assert info.last_command == "hello there" and info.bytes_in > 0 and info.peer_ip == "127.0.0.1"
    assert registry.kick(info.id)
    assert reader.readline() == b""  # the client sees the connection close
    deadline = time.time() + 5
    while registry.count() and time.time() < deadline:
        time.sleep(0.02)
    assert registry.count() == 0


def test_stop_ends_idle_sessions_at_once_and_lets_busy_ones_finish(echo_server):
    server, registry = echo_server()
    idle, idle_reader = connect(server)
    busy, busy_reader = connect(server)
    busy.sendall(b"SLOW\r\n")
    time.sleep(0.2)
    started = time.monotonic()
    stopper = threading.Thread(target=server.stop, args=(5.0,))
    stopper.start()
    assert idle_reader.readline() == b""
    assert busy_reader.readline() == b"OK SLOW\r\n"  # the command in flight finished
    stopper.join()
    assert time.monotonic() - started < 3


def test_doorbells_wake_the_other_workers_and_answer_the_admin(tmp_path):
    import threading
    from appliance.net.doorbell import Doorbell, catch_up_all, gather

    heard = {0: threading.Event(), 1: threading.Event()}
    certificates = threading.Event()
    caught_up = []
    bells = [Doorbell(tmp_path, i, 2, on_ring=lambda i=i: (caught_up.append(i), heard[i].set()),
                      report=lambda i=i: {"index": i, "pid": 100 + i}, on_certificate=certificates.set)
             for i in range(2)]
    try:
        bells[0].ring_others()
        assert heard[1].wait(5) and not heard[0].is_set()  # a worker never rings itself
        bells[1].certificate_changed()
        assert certificates.wait(5)
        caught_up.clear()
        catch_up_all(tmp_path, 2, own_index=0)
        assert caught_up == [1]  # answered only once worker 1 had caught up
        assert gather(tmp_path, 2, {"index": 0, "pid": 1}, 0) == [{"index": 0, "pid": 1}, {"index": 1, "pid": 101}]
        bells[1].close()
        assert gather(tmp_path, 2, {"index": 0}, 0, timeout=0.2) == [{"index": 0}, {"index": 1}]  # gone: index only
        bells[0].ring_others()  # a missing peer is no error
    finally:
        bells[0].close()
        if (tmp_path / "1.sock").exists():
            bells[1].close()


def test_a_session_thread_serves_the_next_connections_and_stop_ends_those_waiting(echo_server):
    served_by = []

    class Recorded(Echo):
        def run(self):
            served_by.append(threading.current_thread())  # not its ident: a new thread may get an old one's
            super().run()

    def waiting():
        return [t for t in threading.enumerate() if t.name == "session-idle"]

    server, registry = echo_server(session_class=Recorded)
    for _ in range(3):  # one after the other, as an MTA sends: a new connection per message
        sock, reader = connect(server)
        sock.sendall(b"hi\r\n")
        assert reader.readline() == b"OK hi\r\n"
        reader.close()
        sock.close()
        deadline = time.time() + 5
        while not (registry.count() == 0 and waiting()) and time.time() < deadline:
            time.sleep(0.02)
    assert len(served_by) == 3 and len(set(served_by)) == 1
    server.stop(1.0)
    deadline = time.time() + 5
    while waiting() and time.time() < deadline:
        time.sleep(0.02)
    assert waiting() == []
