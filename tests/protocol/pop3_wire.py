"""POP3 test clients: a transcript client (``c.send(...)``, ``c.expect(...)``) and poplib.

``expect`` takes a named reply from ``appliance.pop3.replies`` (compared byte for
byte) or an fnmatch pattern such as ``"+OK *"`` (see ``line_wire``). ``multiline`` reads a
whole multi-line reply and returns its body lines with the byte-stuffing undone.
"""

from __future__ import annotations

import poplib
import socket
import time

from appliance.pop3 import replies
from appliance.store.models import Delivery
from tests.protocol.line_wire import HOSTNAME, LineWire


class Pop3Wire(LineWire):
    @classmethod
    def open(cls, server, listener: str = "pop3s", timeout: float = 10.0) -> "Pop3Wire":
        sock = server.connect(listener, timeout=timeout)
        if listener == "pop3s":
            sock = server.tls_context().wrap_socket(sock, server_hostname=HOSTNAME)
        wire = cls(sock, server)
        wire.expect(replies.greeting(HOSTNAME))
        return wire

    @classmethod
    def logged_in(cls, server, address: str, password: str, listener: str = "pop3s") -> "Pop3Wire":
        wire = cls.open(server, listener)
        wire.transact(f"USER {address}", replies.OK_USER)
        wire.transact(f"PASS {password}", replies.OK_LOGGED_IN)
        return wire

    def multiline(self) -> list[bytes]:
        """Body lines of a multi-line reply whose status line was already read."""
        body = []
        while (line := self.line()) != b".":
            body.append(line[1:] if line.startswith(b"..") else line)
        return body


class VerifiedPOP3(poplib.POP3):
    """poplib.POP3 that reaches our loopback port but checks the certificate's name.

    poplib uses its host argument both to connect and as the TLS server name; the
    test certificate names mail.example.org, which does not resolve here.
    """

    def __init__(self, server, listener: str):
        self._address = server.address(listener)
        self._implicit_tls = server.tls_context() if listener == "pop3s" else None
        super().__init__(HOSTNAME, self._address[1], timeout=10)

    def _create_socket(self, timeout):
        sock = socket.create_connection(self._address, timeout)
        if self._implicit_tls is not None:
            sock = self._implicit_tls.wrap_socket(sock, server_hostname=self.host)
        return sock


def deliver(server, user, *raws: bytes) -> None:
    """Put messages into the user's INBOX, as SMTP delivery would."""
    for raw in raws:
        server.store.deliver(raw, [Delivery(user.id)])


def inbox(server, user) -> list:
    """The messages now in the user's INBOX (store rows)."""
    return server.store.list_messages(server.store.get_mailbox(user.id, "INBOX").id)


def wait_for_pop3_sessions_to_end(server, timeout: float = 10.0) -> None:
    """Block until the server has finished every POP3 session (after a client dropped)."""
    deadline = time.monotonic() + timeout
    while any(info["listener"] in ("pop3", "pop3s") for info in server.admin.sessions()):
        assert time.monotonic() < deadline, "a POP3 session did not end"
        time.sleep(0.02)
