"""The Sender Rewriting Scheme for mail forwarded to external addresses.

A forwarded message keeps its author's envelope sender, so the destination's SPF check
would see our server sending for a domain that never allowed it. SRS rewrites the sender
into an address of ours that encodes the original and is signed, so SPF passes and a
bounce returns here, where ``reverse`` recovers the original address:

    SRS0=HHHH=TT=example.com=alice@srs.our.domain

HHHH is an HMAC over the timestamp and the original address, TT the day it was made
(base32, 1024-day cycle); ``reverse`` refuses forged or stale addresses. A sender that
is already SRS0 at another forwarder becomes SRS1 (it points at that forwarder).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
MAX_AGE_DAYS = 21   # a bounce later than this is refused


def load_secret(store) -> bytes:
    """The server's SRS secret, made on first use and kept in the store (backups carry it)."""
    return store.ensure_secret("srs", lambda: secrets.token_hex(32).encode())


def _hash(secret: bytes, *parts: str) -> str:
    digest = hmac.new(secret, "".join(parts).lower().encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()[:4]


def _today(now: float | None) -> str:
    days = int((now or time.time()) // 86400) % 1024
    return _BASE32[days >> 5] + _BASE32[days & 31]


def forward(sender: str, srs_domain: str, secret: bytes, now: float | None = None) -> str:
    """The rewritten envelope sender for forwarding mail from ``sender``."""
    local, _, domain = sender.rpartition("@")
    upper = local[:5].upper()
    if upper.startswith(("SRS0=", "SRS0+", "SRS0-")):
        # SRS0=HHH=TT=domain=local@forwarder  ->  SRS1=HHH=forwarder==HHH=TT=domain=local@us
        rest = local[5:]
        return f"SRS1={_hash(secret, domain, rest)}={domain}=={rest}@{srs_domain}"
    if upper.startswith(("SRS1=", "SRS1+", "SRS1-")):
        # Already SRS1: keep pointing at the first forwarder, re-signed by us.
        first, _, rest = local[5:].partition("=")[2].partition("==")
        return f"SRS1={_hash(secret, first, rest)}={first}=={rest}@{srs_domain}"
    stamp = _today(now)
    return f"SRS0={_hash(secret, stamp, domain, local)}={stamp}={domain}={local}@{srs_domain}"


def reverse(address: str, secret: bytes, now: float | None = None) -> str | None:
    """The original address behind an SRS address of ours, or None if it is not a valid one."""
    local = address.rpartition("@")[0]
    kind, body = local[:5].upper(), local[5:]
    if kind == "SRS0=":
        fields = body.split("=", 3)
        if len(fields) != 4:
            return None
        given, stamp, domain, orig_local = fields
        if not hmac.compare_digest(given, _hash(secret, stamp, domain, orig_local)) or _stale(stamp, now):
            return None
        return f"{orig_local}@{domain}"
    if kind == "SRS1=":
        given, _, rest = body.partition("=")
        first, _, srs0 = rest.partition("==")
        if not first or not srs0 or not hmac.compare_digest(given, _hash(secret, first, srs0)):
            return None
        return f"SRS0={srs0}@{first}"
    return None


def _stale(stamp: str, now: float | None) -> bool:
    if len(stamp) != 2 or any(c not in _BASE32 for c in stamp.upper()):
        return True
    made = _BASE32.index(stamp[0].upper()) * 32 + _BASE32.index(stamp[1].upper())
    today = int((now or time.time()) // 86400) % 1024
    return (today - made) % 1024 > MAX_AGE_DAYS


@dataclass(frozen=True)
class Srs:
    """This server's SRS identity: the secret, and the domain its SRS addresses live under."""

    secret: bytes
    domain: str

    def forward(self, sender: str, now: float | None = None) -> str:
        return forward(sender, self.domain, self.secret, now)

    def reverse(self, address: str, now: float | None = None) -> str | None:
        """The original address behind one of our SRS addresses; None for anything else."""
        if address.rpartition("@")[2].lower().rstrip(".") != self.domain.lower():
            return None
        return reverse(address, self.secret, now)
