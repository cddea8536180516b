"""Small, fast protocol clients and the shared description of a benchmark target.

The generators read responses in large blocks instead of line by line through imaplib or
poplib, so the client's own Python overhead stays small next to the server's work. They still
speak the real protocols over real loopback sockets.
"""

import socket
import statistics
import time
from dataclasses import dataclass, field


@dataclass
class Target:
    """One side of a comparison: where its protocols listen and who may log in."""

    name: str  # "kotakpos" or "postfix+dovecot"; the key in the results
    host: str = "127.0.0.1"
    smtp_port: int | None = None  # accepts mail for the test domain's users
    imap_port: int | None = None
    pop3_port: int | None = None
    users: list[tuple[str, str]] = field(default_factory=list)  # (address, password)
    # Where one message is delivered for the IDLE push test, and how: the MDA entry point
    # whose acknowledgement means "committed" (LMTP for Dovecot, SMTP for Kotakpos).
    deliver_proto: str = "smtp"
    deliver_port: int | None = None
    server_pid: int | None = None  # root of the server's process tree, for resident memory
    # The process trees that do the work of accepting and delivering mail, for CPU per message
    # (Postfix's and Dovecot's for the peer).
    cpu_roots: tuple[int, ...] = ()

    def password(self, address: str) -> str:
        return dict(self.users)[address]


class ProtocolError(Exception):
    pass


class Wire:
    """A buffered loopback socket: read a line, read n bytes, read up to a marker."""

    def __init__(self, host: str, port: int, timeout: float = 60.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        # Every read lands in this one block. A new bytes object per recv of a block above
        # glibc's mmap threshold (128 KiB) cost the generator an mmap and munmap each time:
        # with 8 client threads that was enough to make the generator itself the limit.
        self._block = memoryview(bytearray(1 << 16))
        self.received = 0  # bytes read from the server, for MB/s figures

    def _fill(self) -> None:
        n = self.sock.recv_into(self._block)
        if not n:
            raise ProtocolError("server closed the connection")
        self.received += n
        self.buf += self._block[:n]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readline(self) -> bytes:
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            start = len(self.buf)
            self._fill()

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_until(self, marker: bytes) -> bytes:
        """Everything up to and including marker (e.g. POP3's CRLF.CRLF)."""
        start = 0
        while True:
            i = self.buf.find(marker, start)
            if i >= 0:
                data = bytes(self.buf[: i + len(marker)])
                del self.buf[: i + len(marker)]
                return data
            start = max(0, len(self.buf) - len(marker) + 1)
            self._fill()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Imap(Wire):
    """Tagged IMAP commands; literals in responses are read by their announced size."""

    def __init__(self, host: str, port: int, timeout: float = 60.0):
        super().__init__(host, port, timeout)
        self.tag = 0
        self.completion = b""  # the last tagged reply, e.g. for APPENDUID (RFC 4315 §3)
        greeting = self.readline()
        if not greeting.startswith(b"* OK"):
            raise ProtocolError(f"IMAP greeting: {greeting!r}")

    def command(self, text: str, on_untagged=None) -> list[bytes]:
        """Send one command; return the untagged lines (literals inlined) or raise on NO/BAD.

        on_untagged(line) is called per untagged response instead of collecting it, for
        responses too big to keep.
        """
        self.tag += 1
        tag = f"b{self.tag}".encode()
        self.send(tag + b" " + text.encode() + b"\r\n")
        lines = []
        while True:
            line = self.readline()
            # A response line may carry literals: "{n}\r\n" then n bytes, then the line goes on.
            while line.endswith(b"}\r\n") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1: -3])
                line += self.read_exact(size) + self.readline()
            if line.startswith(tag + b" "):
                self.completion = line
                if line[len(tag) + 1:].startswith(b"OK"):
                    return lines
                raise ProtocolError(f"{text.split()[0]}: {line!r}")
            if on_untagged is None:
                lines.append(line)
            else:
                on_untagged(line)

    def login(self, user: str, password: str) -> None:
        self.command(f'LOGIN "{user}" "{password}"')

    def logout(self) -> None:
        try:
            self.command("LOGOUT")
        except (ProtocolError, OSError):
            pass
        self.close()


class Pop3(Wire):
    def __init__(self, host: str, port: int, timeout: float = 60.0):
        super().__init__(host, port, timeout)
        self.ok(self.readline())

    @staticmethod
    def ok(line: bytes) -> bytes:
        if not line.startswith(b"+OK"):
            raise ProtocolError(f"POP3: {line!r}")
        return line

    def simple(self, text: str) -> bytes:
        self.send(text.encode() + b"\r\n")
        return self.ok(self.readline())

    def multi(self, text: str) -> bytes:
        """A multi-line command (LIST, UIDL, RETR): the whole body up to CRLF.CRLF."""
        self.send(text.encode() + b"\r\n")
        self.ok(self.readline())
        # An empty listing is just ".\r\n" straight after the status line.
        if self.buf.startswith(b".\r\n"):
            del self.buf[:3]
            return b""
        return self.read_until(b"\r\n.\r\n")

    def login(self, user: str, password: str) -> None:
        self.simple(f"USER {user}")
        self.simple(f"PASS {password}")


def percentiles(samples: list[float]) -> dict:
    """p50, p99 and max in milliseconds (samples in seconds)."""
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p99_ms": round(p99 * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2)}


def imap_status_messages(target: Target, address: str, mailbox: str = "INBOX") -> int:
    c = Imap(target.host, target.imap_port)
    try:
        c.login(address, target.password(address))
        return _status_count(c, mailbox)
    finally:
        c.logout()


def _status_count(c: Imap, mailbox: str) -> int:
    for line in c.command(f'STATUS "{mailbox}" (MESSAGES)'):
        if b"MESSAGES" in line:
            return int(line.split(b"MESSAGES")[1].strip(b" )\r\n").split()[0])
    raise ProtocolError("STATUS without MESSAGES")


def wait_for_messages(target: Target, address: str, expected: int, timeout: float,
                      interval: float = 0.02) -> float | None:
    """Poll IMAP STATUS until `expected` messages are visible; the time it took, or None."""
    start = time.monotonic()
    c = Imap(target.host, target.imap_port)
    try:
        c.login(address, target.password(address))
        while time.monotonic() - start < timeout:
            if _status_count(c, "INBOX") >= expected:
                return time.monotonic() - start
            time.sleep(interval)
        return None
    finally:
        c.logout()
