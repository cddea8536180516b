"""Flags written into the message itself: mbox Status/X-Status/X-Keywords headers.

mbox has nowhere but the header to keep flags, so export adds these lines at the end of
the header and import takes every such line out again: a message comes back with exactly
the bytes it had (as mutt, Dovecot and Thunderbird treat them: status, not content).
"""

from __future__ import annotations

import re

from appliance.migrate.source import SYSTEM_FLAGS

STATUS_HEADERS = (b"status", b"x-status", b"x-keywords")
# X-Status letters (mutt, Dovecot): A answered, F flagged, T draft, D deleted.
X_STATUS = {"\\Answered": "A", "\\Flagged": "F", "\\Draft": "T", "\\Deleted": "D"}


def split_header(text: bytes) -> int:
    """Offset just past the header's last line (where the empty line or the end is)."""
    if text.startswith(b"\n"):
        return 0
    end = text.find(b"\n\n")
    return len(text) if end < 0 else end + 1


def status_lines(flags: frozenset[str]) -> bytes:
    """The header lines that say ``flags`` (LF line ends, as mbox files are written)."""
    lines = [b"Status: RO\n" if "\\Seen" in flags else b"Status: O\n"]
    x_status = "".join(letter for flag, letter in X_STATUS.items() if flag in flags)
    if x_status:
        lines.append(b"X-Status: " + x_status.encode() + b"\n")
    keywords = sorted(f for f in flags if f not in SYSTEM_FLAGS and not f.startswith("\\"))
    if keywords:
        lines.append(b"X-Keywords: " + " ".join(keywords).encode("utf-8") + b"\n")
    return b"".join(lines)


def add_status(text: bytes, flags: frozenset[str]) -> bytes:
    at = split_header(text)
    head = text[:at]
    if head and not head.endswith(b"\n"):  # a header-only message without a final line end
        head += b"\n"
    return head + status_lines(flags) + text[at:]


def take_status(text: bytes) -> tuple[bytes, frozenset[str]]:
    """Remove the status headers from a message (LF line ends); return it and the flags they said."""
    at = split_header(text)
    fields: list[list[bytes]] = []   # each header field: its first line and its folded lines
    for line in text[:at].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    kept, flags = [], set()
    for field in fields:
        name, colon, _ = field[0].partition(b":")
        header = name.strip().lower()
        if not colon or header not in STATUS_HEADERS:
            kept += field
            continue
        value = b"".join(field).partition(b":")[2].decode("utf-8", "replace").strip()
        if header == b"status" and "R" in value:
            flags.add("\\Seen")
        elif header == b"x-status":
            flags.update(flag for flag, letter in X_STATUS.items() if letter in value)
        elif header == b"x-keywords":
            flags.update(k for k in re.split(r"[\s,]+", value) if k)
    return b"".join(kept) + text[at:], frozenset(flags)
