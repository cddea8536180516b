"""A transcript-style IMAP client for conversation tests (STYLE §10).

``c.transact("OK", "SELECT INBOX")`` sends a tagged command, reads up to the tagged
reply, checks its status and returns the untagged lines (literals inlined).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time


from tests.conftest import PASSWORD

_LITERAL = re.compile(rb"\{(\d+)\}\r\n\Z")


class Conversation:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.count = 0
        self.greeting = self.line()

    @classmethod
    def open(cls, server, listener: str = "imaps", timeout: float = 10.0) -> "Conversation":
        sock = server.connect(listener, timeout)
        if listener == "imaps":
            sock = server.tls_context().wrap_socket(sock, server_hostname="mail.example.org")
        return cls(sock)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def raw_line(self) -> bytes:
        while b"\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def line(self) -> bytes:
        """One response line with any literals inlined, without the final CRLF."""
        out = self.raw_line()
        while (match := _LITERAL.search(out)):
            size = int(match.group(1))
            while len(self.buf) < size:
                self._fill()
            out += self.buf[:size]
            self.buf = self.buf[size:]
            out += self.raw_line()
        return out[:-2] if out.endswith(b"\r\n") else out[:-1]

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data if data.endswith(b"\n") else data + b"\r\n")

    def next_tag(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def read_until(self, tag: str) -> tuple[list[bytes], bytes]:
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag.encode() + b" "):
                return untagged, line
            untagged.append(line)

    def transact(self, status: str, command: bytes | str) -> list[bytes]:
        tag = self.next_tag()
        if isinstance(command, str):
            command = command.encode()
        self.send(tag.encode() + b" " + command)
        untagged, tagged = self.read_until(tag)
        assert tagged.split(b" ")[1] == status.encode(), (command, untagged, tagged)
        self.last = tagged
        return untagged

    def login(self, user: str, password: str = PASSWORD) -> None:
        self.transact("OK", f'LOGIN {user} "{password}"')

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def message(subject: str = "hello", body: str = "Hello there.\r\n", sender: str = "bob@example.net",
            to: str = "alice@example.org", extra: str = "") -> bytes:
    return (f"From: Bob <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 4 Mar 2024 10:00:00 +0000\r\nMessage-ID: <{abs(hash(subject))}@example.net>\r\n"
            f"{extra}\r\n{body}").encode()


def deliver(server, address: str, raw: bytes, mailbox: str = "INBOX"):
    from appliance.store import Delivery

    user = server.store.get_user(address) or server.add_user(address)
    return server.store.deliver(raw, [Delivery(user.id, mailbox)])


def session(server, address: str = "alice@example.org", listener: str = "imaps") -> Conversation:
    """A logged-in conversation for ``address`` (created if needed)."""
    if server.store.get_user(address) is None:
        server.add_user(address)
    conv = Conversation.open(server, listener)
    conv.login(address)
    return conv


def idler(server, address: str = "alice@example.org") -> Conversation:
    """A plain IMAP client idling on INBOX (its IDLE continuation already read)."""
    conv = Conversation.open(server, "imap")
    conv.login(address)
    conv.transact("OK", "SELECT INBOX")
    conv.send("i IDLE")
    assert conv.line() == b"+ idling"
    return conv


@contextlib.contextmanager
def server_zone(zone: str):
    """Run the in-process server in the local time zone ``zone`` (a POSIX TZ string, which
    needs no tz database), then put the process's zone back."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
