"""DKIM signing of outbound mail from local domains (RFC 6376, ed25519 per RFC 8463).

Each local domain has two keys in the data folder, made by ``kotakpos domain add``:
``dkim/<domain>/rsa.pem`` (rsa-sha256, 2048 bits, PKCS#1 PEM) and
``dkim/<domain>/ed25519.key`` (the base64 32-byte seed dkimpy reads). Both sign every
message, so a receiver that knows only RSA still verifies. The selectors are fixed; the
TXT records to publish come from ``public_records`` (``kotakpos dns DOMAIN``).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from pathlib import Path

import dkim as dkimpy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

log = logging.getLogger("kotakpos.mta")

RSA_SELECTOR = "kotakpos-rsa"
ED25519_SELECTOR = "kotakpos-ed25519"
RSA_FILE, ED25519_FILE = "rsa.pem", "ed25519.key"


def key_folder(data_dir: Path | str, domain: str) -> Path:
    return Path(data_dir) / "dkim" / domain.lower().rstrip(".")


def ensure_keys(data_dir: Path | str, domain: str) -> bool:
    """Create the domain's two keys unless they exist; True when created."""
    folder = key_folder(data_dir, domain)
    if (folder / RSA_FILE).exists() and (folder / ED25519_FILE).exists():
        return False
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(folder / RSA_FILE, rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    seed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    _write_private(folder / ED25519_FILE, base64.b64encode(seed) + b"\n")
    return True


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def public_records(data_dir: Path | str, domain: str) -> list[tuple[str, str]]:
    """(DNS name, TXT value) of both keys; empty when the domain has no keys."""
    folder = key_folder(data_dir, domain)
    if not (folder / RSA_FILE).exists() or not (folder / ED25519_FILE).exists():
        return []
    rsa_key = serialization.load_pem_private_key((folder / RSA_FILE).read_bytes(), password=None)
    rsa_public = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    seed = base64.b64decode((folder / ED25519_FILE).read_bytes())
    ed_public = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return [
        (f"{RSA_SELECTOR}._domainkey.{domain}", f"v=DKIM1; k=rsa; p={base64.b64encode(rsa_public).decode()}"),
        (f"{ED25519_SELECTOR}._domainkey.{domain}", f"v=DKIM1; k=ed25519; p={base64.b64encode(ed_public).decode()}"),
    ]


class Signer:
    """Signs messages for local domains with their keys (read once, then cached)."""

    def __init__(self, data_dir: Path | str):
        self.data_dir = Path(data_dir)
        self._keys: dict[str, tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()

    def _domain_keys(self, domain: str) -> tuple[bytes, bytes] | None:
        # Only found keys are cached: a domain added while the server runs signs at once.
        with self._lock:
            if domain not in self._keys:
                folder = key_folder(self.data_dir, domain)
                try:
                    self._keys[domain] = ((folder / RSA_FILE).read_bytes(), (folder / ED25519_FILE).read_bytes().strip())
                except FileNotFoundError:
                    return None
            return self._keys[domain]

    def sign(self, raw: bytes, domain: str) -> bytes:
        """``raw`` with DKIM-Signature headers for ``domain`` prepended (unchanged without keys)."""
        keys = self._domain_keys(domain.lower())
        if keys is None:
            return raw
        rsa_pem, ed_seed = keys
        try:
            # Sign the same bytes with both keys; neither signature covers the other.
            ed_sig = dkimpy.sign(raw, ED25519_SELECTOR.encode(), domain.encode(), ed_seed,
                                 signature_algorithm=b"ed25519-sha256")
            rsa_sig = dkimpy.sign(raw, RSA_SELECTOR.encode(), domain.encode(), rsa_pem,
                                  signature_algorithm=b"rsa-sha256")
        except dkimpy.DKIMException as e:
            log.error("DKIM signing for %s failed, sending unsigned: %s", domain, e)
            return raw
        return rsa_sig + ed_sig + raw
