"""The outbound SMTP client: one connection to one destination, many messages over it.

Built on ``smtplib`` for the conversation primitives (greeting, EHLO, STARTTLS, AUTH,
reply reading); the transaction itself is written here so it can pipeline (RFC 2920),
pass DSN parameters on (RFC 3461 §5.2), and report a result per recipient. Every wait
has its own timeout from RFC 5321 §4.5.3.2, so a server that stalls costs a bounded
time. A failure that hits the whole connection raises ``DeliveryError`` (temporary);
a reply to one recipient is a ``Result``.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass

from appliance.mta.errors import DeliveryError, temporary
from appliance.mta.transport import Destination, Hop, connect_targets

log = logging.getLogger("kotakpos.mta")

# Message data goes out in pieces of this size, each under the block timeout.
CHUNK = 65536
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)")


@dataclass(frozen=True)
class Timeouts:
    """RFC 5321 §4.5.3.2 waits, in seconds (from ``[mta]``)."""

    connect: float
    command: float     # greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET (§4.5.3.2.1-3)
    data_start: float  # the 354 after DATA (§4.5.3.2.4)
    data_block: float  # each piece of data sent (§4.5.3.2.5)
    data_end: float    # the reply after the final dot (§4.5.3.2.6)

    @classmethod
    def from_config(cls, mta) -> "Timeouts":
        return cls(mta.connect_timeout, mta.command_timeout, mta.data_start_timeout, mta.data_block_timeout,
                   mta.data_end_timeout)


@dataclass(frozen=True)
class Outgoing:
    """One message to send: the envelope as it goes on the wire, and the bytes (CRLF, unstuffed)."""

    sender: str                          # MAIL FROM (already SRS-rewritten when forwarded)
    recipients: tuple[str, ...]
    dsn: tuple[dict, ...]                # per recipient: "notify" list, "orcpt" [type, address]
    data: bytes
    ret: str | None = None               # RFC 3461 RET (FULL/HDRS)
    envid: str | None = None             # RFC 3461 ENVID


@dataclass(frozen=True)
class Result:
    """The remote server's answer for one recipient."""

    recipient: str
    code: int
    text: str          # the reply as the server wrote it ("550 5.1.1 ..."), lines joined by spaces

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def status(self) -> str:
        """RFC 3463 status: the server's enhanced code if it gave one of the right class."""
        m = _ENHANCED.match(self.text[4:])
        if m and int(m.group(1)) == self.code // 100:
            return ".".join(m.groups())
        return f"{self.code // 100}.0.0"


def xtext(value: str) -> str:
    """RFC 3461 §4: "+" and "=" and anything outside ! .. ~ become +HH."""
    return "".join(c if "!" <= c <= "~" and c not in "+=" else "".join(f"+{b:02X}" for b in c.encode())
                   for c in value)


def stuff(data: bytes) -> bytes:
    """RFC 5321 §4.5.2: dot-stuffing, a final CRLF, and the end marker."""
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _Client(smtplib.SMTP):
    """smtplib dialling one chosen address while TLS checks the host's name."""

    def __init__(self, address: str, timeouts: Timeouts, implicit: ssl.SSLContext | None):
        self._address = address
        self._timeouts = timeouts
        self._implicit = implicit
        super().__init__(timeout=timeouts.connect)

    def _get_socket(self, host, port, timeout):
        self._host = host  # smtplib's name for STARTTLS's certificate check (SNI)
        sock = socket.create_connection((self._address, port), timeout)
        if self._implicit is not None:
            sock = self._implicit.wrap_socket(sock, server_hostname=host)
        sock.settimeout(self._timeouts.command)
        return sock

    def reply(self, timeout: float) -> tuple[int, str]:
        self.sock.settimeout(timeout)
        code, text = self.getreply()
        return code, text.decode("utf-8", "replace").replace("\n", " ")


def client_contexts(cafile: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(opportunistic, verifying) TLS client contexts.

    Opportunistic TLS (RFC 7435) encrypts without checking the certificate: a passive
    eavesdropper is kept out, and a self-signed MX still gets mail, as with every MTA.
    """
    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    strict = ssl.create_default_context()
    if cafile:
        strict.load_verify_locations(cafile)
    return loose, strict


class Connection:
    """A session with one destination: ``open()``, ``send()`` per message, ``close()``."""

    def __init__(self, destination: Destination, helo_name: str, timeouts: Timeouts,
                 contexts: tuple[ssl.SSLContext, ssl.SSLContext]):
        self.destination = destination
        self.helo_name = helo_name
        self.timeouts = timeouts
        self.loose, self.strict = contexts
        self.client: _Client | None = None
        self.hop: Hop | None = None      # the server we reached (Remote-MTA of DSNs)

    # -- setting up --------------------------------------------------------------------

    def open(self) -> None:
        """Reach the first hop that answers properly. Raises DeliveryError (temporary)."""
        last: DeliveryError | None = None
        for hop in self.destination.hops:
            try:
                addresses = connect_targets(hop)
            except DeliveryError as e:
                last = e
                continue
            for address in addresses:
                try:
                    self._open(hop, address, try_tls=True)
                    return
                except DeliveryError as e:
                    log.info("%s [%s]:%d: %s", hop.host, address, hop.port, e)
                    last = e
        raise last or temporary("4.4.1", "no server to connect to")

    def _open(self, hop: Hop, address: str, try_tls: bool) -> None:
        tls = self.destination.tls
        client = _Client(address, self.timeouts, self.strict if tls == "implicit" else None)
        self.client = client  # visible to abort() from here on
        try:
            code, text = client.connect(hop.host, hop.port)
            if code != 220:
                raise temporary("4.4.1", f"{hop.host} greeted with {code} {text.decode('utf-8', 'replace')}")
            self._hello(client)
            if tls in ("verify", "opportunistic") and try_tls:
                if client.has_extn("starttls"):
                    try:
                        code, text = client.starttls(context=self.strict if tls == "verify" else self.loose)
                    except ssl.SSLError as e:
                        if tls == "verify":
                            raise temporary("4.7.5", f"TLS with {hop.host} failed: {e.reason}") from None
                        # A broken TLS stack on the far side: once more in plain text, as
                        # opportunistic TLS allows (RFC 7435 §6).
                        client.close()
                        self.client = None
                        return self._open(hop, address, try_tls=False)
                    if code != 220:
                        raise temporary("4.7.5", f"{hop.host} refused STARTTLS: {code}")
                    self._hello(client)
                elif tls == "verify":
                    raise temporary("4.7.10", f"{hop.host} does not offer STARTTLS, which is required")
            if self.destination.login:
                self._login(client, hop)
        except DeliveryError:
            client.close()
            self.client = None
            raise
        except (smtplib.SMTPException, OSError) as e:
            client.close()
            self.client = None
            raise temporary("4.4.1", f"{hop.host} [{address}]: {_describe(e)}") from None
        self.hop = hop

    def _hello(self, client: _Client) -> None:
        code, _ = client.ehlo(self.helo_name)
        if code != 250:
            code, _ = client.helo(self.helo_name)
            if code != 250:
                raise temporary("4.4.1", f"HELO refused with {code}")

    def _login(self, client: _Client, hop: Hop) -> None:
        if not isinstance(client.sock, ssl.SSLSocket):
            raise temporary("4.7.10", f"not sending the password to {hop.host} without TLS")
        user, password = self.destination.login
        try:
            client.login(user, password)
        except smtplib.SMTPAuthenticationError as e:
            # Temporary on purpose: a wrong password is fixed by the administrator, and the
            # mail should still go out then.
            raise temporary("4.7.8", f"{hop.host} refused our login: {e.smtp_code}") from None
        except smtplib.SMTPNotSupportedError:
            raise temporary("4.7.8", f"{hop.host} offers no AUTH") from None

    @property
    def supports_dsn(self) -> bool:
        return self.client is not None and self.client.has_extn("dsn")

    # -- one message ---------------------------------------------------------------------

    def send(self, msg: Outgoing) -> list[Result]:
        """One mail transaction. Raises DeliveryError when the connection is lost."""
        client = self.client
        try:
            return self._transaction(client, msg)
        except (smtplib.SMTPException, OSError) as e:
            self.close()
            raise temporary("4.4.2", f"connection to {self.hop.host} lost: {_describe(e)}") from None

    def _transaction(self, client: _Client, msg: Outgoing) -> list[Result]:
        t = self.timeouts
        dsn = client.has_extn("dsn")
        mail = f"MAIL FROM:<{msg.sender}>"
        if not all(a.isascii() for a in (msg.sender, *msg.recipients)):
            if not client.has_extn("smtputf8"):
                # RFC 6531 §3.2: without SMTPUTF8 at the next hop such mail cannot go on.
                return [Result(r, 553, "553 5.6.7 the next server does not accept non-ASCII addresses (no SMTPUTF8)")
                        for r in msg.recipients]
            mail += " SMTPUTF8"
        if client.has_extn("size"):
            mail += f" SIZE={len(msg.data)}"
        if client.has_extn("8bitmime") and any(b > 127 for b in msg.data):
            mail += " BODY=8BITMIME"
        if dsn and msg.ret:
            mail += f" RET={msg.ret}"
        if dsn and msg.envid:
            mail += f" ENVID={xtext(msg.envid)}"
        commands = [mail] + [f"RCPT TO:<{r}>" + (_rcpt_dsn(d) if dsn else "")
                             for r, d in zip(msg.recipients, msg.dsn)]
        wire = [(c + "\r\n").encode("utf-8") for c in commands]
        if client.has_extn("pipelining"):
            # RFC 2920: MAIL and every RCPT in one write, then the replies in order.
            client.send(b"".join(wire))
            replies = [client.reply(t.command) for _ in wire]
        else:
            replies = []
            for line in wire:
                client.send(line)
                replies.append(client.reply(t.command))
        mail_code, mail_text = replies[0]
        if mail_code != 250:
            self._reset(client)
            return [Result(r, mail_code, f"{mail_code} {mail_text}") for r in msg.recipients]
        results = {r: Result(r, code, f"{code} {text}") for r, (code, text) in zip(msg.recipients, replies[1:])}
        accepted = [r for r, res in results.items() if res.ok]
        if not accepted:
            self._reset(client)
            return list(results.values())
        client.send(b"DATA\r\n")
        code, text = client.reply(t.data_start)
        if code != 354:
            for r in accepted:
                results[r] = Result(r, code, f"{code} {text}")
            return list(results.values())
        data = stuff(msg.data)
        for start in range(0, len(data), CHUNK):
            client.sock.settimeout(t.data_block)
            client.sock.sendall(data[start:start + CHUNK])
        code, text = client.reply(t.data_end)
        for r in accepted:
            results[r] = Result(r, code, f"{code} {text}")
        return list(results.values())

    def _reset(self, client: _Client) -> None:
        client.send(b"RSET\r\n")
        code, _ = client.reply(self.timeouts.command)
        if code != 250:
            raise smtplib.SMTPResponseException(code, "RSET refused")

    def abort(self) -> None:
        """Cut the connection from another thread (server stop): the blocked reader wakes up."""
        client = self.client
        if client is not None and client.sock is not None:
            try:
                client.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.sock.settimeout(min(self.timeouts.command, 10.0))
            client.quit()
        except (smtplib.SMTPException, OSError, AttributeError):
            pass
        finally:
            client.close()


def _rcpt_dsn(d: dict) -> str:
    """RFC 3461 §5.2: a relay passes NOTIFY and ORCPT on to a next hop that supports DSN."""
    text = ""
    if d.get("notify"):
        text += " NOTIFY=" + ",".join(d["notify"])
    if d.get("orcpt"):
        addr_type, address = d["orcpt"]
        text += f" ORCPT={addr_type};{xtext(address)}"
    return text


def _describe(e: BaseException) -> str:
    if isinstance(e, smtplib.SMTPResponseException):
        return f"{e.smtp_code} {e.smtp_error.decode('utf-8', 'replace') if isinstance(e.smtp_error, bytes) else e.smtp_error}"
    if isinstance(e, (TimeoutError, socket.timeout)):
        return "timed out"
    return str(e) or e.__class__.__name__
