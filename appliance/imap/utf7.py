"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

Printable ASCII stands for itself except "&", written "&-"; every other run of
characters is UTF-16BE, base64 with "," instead of "/", no padding, between "&"
and "-".
"""

from __future__ import annotations

import base64
import binascii


class Utf7Error(ValueError):
    """The bytes are not valid modified UTF-7."""


def _is_direct(ch: str) -> bool:
    return 0x20 <= ord(ch) <= 0x7E


def encode(name: str) -> bytes:
    """Encode a mailbox name (str) to modified UTF-7 bytes."""
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            out.extend(b"&" + base64.b64encode(utf16).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for ch in name:
        if _is_direct(ch):
            flush()
            out.extend(b"&-" if ch == "&" else ch.encode("ascii"))
        else:
            pending.append(ch)
    flush()
    return bytes(out)


def decode(data: bytes) -> str:
    """Decode modified UTF-7 bytes to str; raise Utf7Error on anything not canonical."""
    out: list[str] = []
    run_ended_at = -1  # index just past the "-" of the last base64 run
    i = 0
    while i < len(data):
        byte = data[i]
        if byte != 0x26:  # "&"
            if not 0x20 <= byte <= 0x7E:
                raise Utf7Error("8-bit or control octet in mailbox name")
            out.append(chr(byte))
            i += 1
            continue
        end = data.find(b"-", i + 1)
        if end < 0:
            raise Utf7Error("unterminated base64 run")
        chunk = data[i + 1:end]
        if not chunk:
            out.append("&")
            i = end + 1
            continue
        # Two runs back to back would give a second spelling of the same name.
        if i == run_ended_at:
            raise Utf7Error("two adjacent base64 runs")
        if b"/" in chunk or b"=" in chunk:
            raise Utf7Error("'/' or padding inside base64 run")
        raw = chunk.replace(b",", b"/")
        try:
            utf16 = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
            text = utf16.decode("utf-16-be")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Utf7Error("bad base64 run") from exc
        if any(_is_direct(ch) for ch in text):
            raise Utf7Error("printable ASCII inside base64 run")
        out.append(text)
        i = run_ended_at = end + 1
    return "".join(out)
