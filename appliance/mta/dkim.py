"""DKIM signing of outbound mail from local domains (RFC 6376, ed25519 per RFC 8463), and
ARC sealing of mail we forward (RFC 8617) with the same RSA key.

Each local domain has two keys in the store (so backups carry them), made by
``kotakpos domain add``: ``dkim/<domain>/rsa`` (rsa-sha256, 2048 bits, PKCS#1 PEM) and
``dkim/<domain>/ed25519`` (the base64 32-byte seed dkimpy reads). Both sign every
message, so a receiver that knows only RSA still verifies. The selectors are fixed; the
TXT records to publish come from ``public_records`` (``kotakpos dns DOMAIN``).
"""

from __future__ import annotations

import base64
import logging
import threading

import dkim as dkimpy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

log = logging.getLogger("kotakpos.mta")

RSA_SELECTOR = "kotakpos-rsa"
ED25519_SELECTOR = "kotakpos-ed25519"


def _names(domain: str) -> tuple[str, str]:
    domain = domain.lower().rstrip(".")
    return f"dkim/{domain}/rsa", f"dkim/{domain}/ed25519"


def _new_rsa() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _new_ed25519() -> bytes:
    seed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return base64.b64encode(seed)


def ensure_keys(store, domain: str) -> None:
    """Create the domain's two keys unless they exist."""
    rsa_name, ed_name = _names(domain)
    store.ensure_secret(rsa_name, _new_rsa)
    store.ensure_secret(ed_name, _new_ed25519)


def _keys(store, domain: str) -> tuple[bytes, bytes] | None:
    rsa_name, ed_name = _names(domain)
    rsa_pem, ed_seed = store.secret(rsa_name), store.secret(ed_name)
    return (rsa_pem, ed_seed) if rsa_pem and ed_seed else None


def public_records(store, domain: str) -> list[tuple[str, str]]:
    """(DNS name, TXT value) of both keys; empty when the domain has no keys."""
    keys = _keys(store, domain)
    if keys is None:
        return []
    rsa_key = serialization.load_pem_private_key(keys[0], password=None)
    rsa_public = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    seed = base64.b64decode(keys[1])
    ed_public = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return [
        (f"{RSA_SELECTOR}._domainkey.{domain}", f"v=DKIM1; k=rsa; p={base64.b64encode(rsa_public).decode()}"),
        (f"{ED25519_SELECTOR}._domainkey.{domain}", f"v=DKIM1; k=ed25519; p={base64.b64encode(ed_public).decode()}"),
    ]


class Signer:
    """Signs messages for local domains with their keys (read once, then cached)."""

    def __init__(self, store):
        self.store = store
        self._keys: dict[str, tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()

    def _domain_keys(self, domain: str) -> tuple[bytes, bytes] | None:
        # Only found keys are cached: a domain added while the server runs signs at once.
        with self._lock:
            if domain not in self._keys:
                found = _keys(self.store, domain)
                if found is None:
                    return None
                self._keys[domain] = found
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

    def seal(self, raw: bytes, domain: str, authserv_id: str) -> bytes:
        """The next ARC set for ``raw`` (RFC 8617 §5.1), sealed for ``domain``: b"" when the
        domain has no keys, or ``raw`` has no Authentication-Results of ``authserv_id`` to
        build the ARC-Authentication-Results from. The seal's cv= follows the ``arc=`` result
        recorded there. ARC defines only rsa-sha256, so the RSA key seals; its DNS
        record is the one ``public_records`` gives for DKIM."""
        keys = self._domain_keys(domain.lower())
        if keys is None:
            return b""
        try:
            arc_set = dkimpy.arc_sign(raw, RSA_SELECTOR.encode(), domain.encode(), keys[0], authserv_id.encode())
        except dkimpy.DKIMException as e:
            log.error("ARC sealing for %s failed, forwarding unsealed: %s", domain, e)
            return b""
        return b"".join(arc_set)
