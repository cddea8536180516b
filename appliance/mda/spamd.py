"""A spamd client (SpamAssassin's SPAMC/SPAMD protocol 1.5, the CHECK command).

> CHECK SPAMC/1.5, Content-length: N, blank line, the message
< SPAMD/1.1 0 EX_OK, then "Spam: True ; 15.0 / 5.0"
"""

from __future__ import annotations

import re
import socket


class SpamdError(Exception):
    """spamd could not be reached or gave no usable answer."""


_SPAM = re.compile(rb"^Spam:\s*(\w+)\s*;\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)", re.M | re.I)


def check(address: str, raw: bytes, timeout: float) -> float:
    """spamd's score for ``raw``. Raises SpamdError."""
    host, _, port = address.rpartition(":")
    request = b"CHECK SPAMC/1.5\r\nContent-length: %d\r\n\r\n" % len(raw) + raw
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while True:
                block = sock.recv(4096)
                if not block:
                    break
                answer += block
    except (OSError, ValueError) as e:
        raise SpamdError(f"{address}: {e}") from e
    m = _SPAM.search(answer)
    if not answer.startswith(b"SPAMD/") or m is None:
        raise SpamdError(f"{address}: unexpected answer {answer[:100]!r}")
    return float(m.group(2))
