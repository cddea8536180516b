"""App passwords: one per device, made by the server, shown to the user once.

Twenty letters from an alphabet without look-alikes (about 94 bits) — nothing a person
could guess, so the store keeps a SHA-256 digest rather than a slow hash, and a login finds
the row by it at once. Shown in groups of four; spaces typed with it are ignored.
"""

from __future__ import annotations

import hashlib
import secrets

ALPHABET = "abcdefghjkmnpqrstuvwxyz"  # no i, l, o: nothing to mistake for 1 or 0
LENGTH = 20


def new_app_password() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return " ".join(raw[i:i + 4] for i in range(0, LENGTH, 4))


def digest(password: str) -> str:
    """The stored form of an app password (or of a recovery code): SHA-256 hex of it without spaces."""
    return hashlib.sha256(password.replace(" ", "").strip().lower().encode()).hexdigest()
