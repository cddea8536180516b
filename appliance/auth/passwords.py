"""Which new passwords are refused, and why.

Too short, the address (or its local part) itself, or one of the 10,000 most common
passwords (``common-passwords.txt`` beside this module, shipped with the program: no
lookup ever leaves the server). The check is for a password a person chooses; app
passwords are made by the server (``app_passwords``).
"""

from __future__ import annotations

import functools
from pathlib import Path

MIN_LENGTH = 10
COMMON_LIST = Path(__file__).with_name("common-passwords.txt")


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def weakness(address: str, password: str) -> str | None:
    """Why ``password`` is refused for ``address``: "too-short", "is-address" or "common"; None if fine."""
    if len(password) < MIN_LENGTH:
        return "too-short"
    folded = password.strip().casefold()
    local = address.rpartition("@")[0].casefold()
    if folded in (address.casefold(), local) or folded.replace(" ", "") in (address.casefold(), local):
        return "is-address"
    if folded in common_passwords():
        return "common"
    return None
