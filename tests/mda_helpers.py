"""Shared steps of the MDA tests: build messages, run one filter, send by SMTP, read folders."""

from __future__ import annotations

import base64
import imaplib
import io
import smtplib
import time
import zipfile
from email.message import EmailMessage
from email.utils import formatdate

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from appliance.config import Config, with_overrides
from appliance.mda.auth import AuthFilter
from appliance.mda.filter import Incoming
from appliance.mta.router import Envelope, Kind, Recipient, Route
from appliance.store import User
from tests.conftest import PASSWORD

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
USER = User(1, "alice@example.org", 0, 0.0)


def plain(body: str = "Hello there.\n", subject: str = "hello", sender: str = "bob@remote.test",
          to: str = "alice@example.org", headers: dict | None = None) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{time.monotonic_ns()}@remote.test>"
    m["Date"] = formatdate()
    for k, v in (headers or {}).items():
        m[k] = v
    m.set_content(body)
    return m


def rsa_key() -> tuple[bytes, str]:
    """A small RSA key for DKIM and ARC tests: (the PKCS#1 PEM dkimpy signs with, the
    base64 public key a DNS record's p= carries)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode()


def with_attachment(name: str, data: bytes, **kw) -> EmailMessage:
    m = plain(**kw)
    m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return m


def zipped(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def wire(m: EmailMessage) -> bytes:
    return m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Counting:
    """Stands in for ServerContext in unit tests: config, counters, a hostname."""

    def __init__(self, store=None, resolver: str = "none", **mda):
        self.config = with_overrides(Config(), dns={"resolver": resolver}, mda=mda)
        self.stats: dict[str, int] = {}
        self.hostname = "mail.example.org"
        self.store = store

    def count(self, name: str, n: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + n


def incoming(raw: bytes, sender: str = "bob@remote.test", users=(USER,), client_ip: str = "192.0.2.1",
             client_name: str = "mx.remote.test", authenticated_as: str = "", notify=None, envid=None) -> Incoming:
    recipients = tuple(Recipient(Route(u.address, Kind.LOCAL, (u,)), notify=notify) for u in users)
    env = Envelope(sender=sender, recipients=recipients, message_id="TEST1", authenticated_as=authenticated_as,
                   client_ip=client_ip, client_name=client_name, envid=envid)
    return Incoming(env, raw, list(users), "mail.example.org")


def authenticate(raw: bytes, resolver: str, **kw) -> tuple[str, dict, Incoming]:
    """Run the auth filter alone on ``raw`` (``kw`` as for ``incoming``): its
    Authentication-Results value, the notes it leaves the spam filter, and the message."""
    f = AuthFilter(Counting(resolver=resolver, dns_timeout=0.5))
    msg = incoming(raw, **kw)
    check = f.check(msg)
    try:
        verdict = check.check_body()
    finally:
        check.close()
    [(name, value)] = verdict.add_headers
    assert name == "Authentication-Results" and verdict.reject is None
    return value, msg.notes["auth"], msg


def send(server, raw: bytes | EmailMessage, to: str | list[str] = "alice@example.org",
         sender: str = "bob@remote.test", port: str = "smtp", rcpt_options=(), mail_options=(),
         login: tuple[str, str] | None = None):
    """Send by SMTP with smtplib; returns smtplib's refusal dict (raises on DATA refusal)."""
    if isinstance(raw, EmailMessage):
        raw = wire(raw)
    with smtplib.SMTP("127.0.0.1", server.port(port), timeout=30) as s:
        if login:
            s.starttls(context=server.tls_context())
            s.login(*login)
        return s.sendmail(sender, to, raw, mail_options=list(mail_options), rcpt_options=list(rcpt_options))


def folder(server, address: str, name: str = "INBOX") -> list[bytes]:
    store = server.store
    user = store.get_user(address)
    mailbox = store.get_mailbox(user.id, name)
    return [store.get_raw(r.blob_id) for r in store.list_messages(mailbox.id)]


def imap_folders(server, address: str) -> dict[str, list[bytes]]:
    """Each folder of ``address`` and the subjects in it, as an IMAP client sees them."""
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    client.starttls(ssl_context=server.tls_context())
    client.login(address, PASSWORD)
    seen = {}
    for line in client.list()[1]:
        name = line.decode().rsplit(' "/" ', 1)[1].strip('"')
        count = int(client.select(f'"{name}"', readonly=True)[1][0])
        subjects = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1] if count else []
        seen[name] = [part[1].strip() for part in subjects if isinstance(part, tuple)]
    client.logout()
    return seen


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


__all__ = ["EICAR", "USER", "Counting", "authenticate", "folder", "imap_folders", "incoming", "plain", "rsa_key",
           "send", "wait_for", "with_attachment", "wire", "zipped"]
