"""TLS: the self-signed certificate made on first start, and the server context.

Only TLS 1.2 and newer with forward-secret AEAD ciphers. The context is rebuilt from the
files on SIGHUP (``TlsContexts.reload``), so a renewed certificate takes effect without a
restart; connections already open keep the one they started with.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import stat
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"


class TlsError(Exception):
    pass


def ensure_certificate(cert_path: Path, key_path: Path, hostname: str) -> bool:
    """Create a self-signed certificate for ``hostname`` unless both files exist; True if created."""
    if cert_path.exists() and key_path.exists():
        return False
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.IPAddress(ipaddress.ip_address("::1"))]
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def check_key_permissions(key_path: Path) -> None:
    mode = key_path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TlsError(f"TLS key {key_path} is readable by other users; fix it with: chmod 600 {key_path}")


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"cannot load TLS certificate {cert_path} / key {key_path}: {e}") from None
    return context


class TlsContexts:
    """The current server context; ``current()`` is what a handshake starting now uses."""

    def __init__(self, cert_path: Path, key_path: Path):
        self.cert_path, self.key_path = cert_path, key_path
        self._lock = threading.Lock()
        check_key_permissions(key_path)
        self._context = server_context(cert_path, key_path)

    def current(self) -> ssl.SSLContext:
        return self._context

    def reload(self) -> None:
        check_key_permissions(self.key_path)
        context = server_context(self.cert_path, self.key_path)
        with self._lock:
            self._context = context

    def expiry(self) -> datetime.datetime:
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        return cert.not_valid_after_utc
