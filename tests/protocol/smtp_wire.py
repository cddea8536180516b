"""A transcript client for SMTP conversation tests: ``c.send(...)``, ``c.expect(...)``.

``expect`` takes a named reply from ``appliance.smtp.replies`` (compared byte for byte)
or a pattern such as ``"250 *"`` / ``"354*"`` (fnmatch on the last line). Multi-line
replies are read whole.
"""

from __future__ import annotations

import fnmatch
import socket

from appliance.smtp.replies import Reply, format_reply


class Wire:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    @classmethod
    def open(cls, server, listener: str = "smtp", greet: bool = True, timeout: float = 10.0) -> "Wire":
        sock = server.connect(listener, timeout=timeout)
        if listener == "smtps":
            sock = server.tls_context().wrap_socket(sock, server_hostname=server.config.server.hostname)
        wire = cls(sock)
        if greet:
            wire.expect("220 *")
        return wire

    # -- sending -------------------------------------------------------------------------

    def send(self, line: str | bytes) -> None:
        data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
        self.sock.sendall(data + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    # -- receiving -----------------------------------------------------------------------

    def _line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; unread {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def read_reply(self) -> bytes:
        """One whole reply (all its lines) as bytes."""
        lines = [self._line()]
        while lines[-1][3:4] == b"-":
            lines.append(self._line())
        return b"".join(lines)

    def expect(self, want: Reply | str) -> bytes:
        got = self.read_reply()
        if isinstance(want, Reply):
            assert got == format_reply(want), f"expected {format_reply(want)!r}, got {got!r}"
        else:
            last = got.rstrip(b"\r\n").split(b"\r\n")[-1].decode("utf-8", "replace")
            assert fnmatch.fnmatchcase(last, want), f"expected {want!r}, got {got!r}"
        return got

    def transact(self, want: Reply | str, line: str | bytes) -> bytes:
        self.send(line)
        return self.expect(want)

    def ehlo(self, name: str = "client.test") -> list[str]:
        """EHLO; returns the extension keywords."""
        got = self.transact("250 *", f"EHLO {name}")
        return [l[4:].decode() for l in got.rstrip(b"\r\n").split(b"\r\n")[1:]]

    def starttls(self, server) -> None:
        self.transact("220 2.0.0 *", "STARTTLS")
        assert not self.buf, "bytes after the 220 to STARTTLS"
        self.sock = server.tls_context().wrap_socket(self.sock, server_hostname=server.config.server.hostname)

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True when the server closed the connection (after any unread replies)."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def inbox(server, address: str, mailbox: str = "INBOX") -> list[bytes]:
    """The raw messages in a user's mailbox, oldest first."""
    store = server.store
    box = store.get_mailbox(store.get_user(address).id, mailbox)
    return [store.get_raw(m.blob_id) for m in store.list_messages(box.id)]


def body_of(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[1]


# Relayed mail for remote.test goes to a closed loopback port: each attempt fails
# temporarily, so queued rows stay put for the test to inspect (no DNS, no bounce).
UNREACHABLE_REMOTE = {"routes": {"remote.test": "127.0.0.1:1", "elsewhere.test": "127.0.0.1:1"}}


def relay_test_server(make_server, **sections):
    """A server with the domain example.org whose relay queue never delivers."""
    server = make_server(mta=UNREACHABLE_REMOTE, **sections)
    server.store.add_domain("example.org")
    return server
