"""Sizes as an administrator types them (quotas): one parser for the CLI and the TUI."""

from __future__ import annotations

import re

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMG]?)(?:I?B)?", re.IGNORECASE)
_FACTORS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
_LIMIT = 2 ** 63  # the store keeps sizes in SQLite's signed 64-bit INTEGER


def parse_size(text: str) -> int:
    """0, 500000, 100k, 250M, 2G, 1.5G, 10MB (powers of 1024) -> bytes. Raises ValueError."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not a size (examples: 3000000, 500M, 1.5G)")
    number, unit = match.groups()
    size = float(number) * _FACTORS[unit.upper()]
    if size >= _LIMIT:  # also a number too long for a float (inf)
        raise ValueError(f"'{text}' is larger than any disk")
    return int(size)
