"""A clamd client: the INSTREAM command over a Unix or TCP socket (clamd(8), "INSTREAM").

The message goes in chunks, each prefixed with its length as 4 bytes in network order,
and a zero-length chunk ends it; clamd answers ``stream: OK`` or ``stream: NAME FOUND``.
The z-prefixed form makes every command and reply end with NUL.
"""

from __future__ import annotations

import socket
import struct

CHUNK = 64 * 1024


class ClamdError(Exception):
    """clamd could not be reached or gave no usable answer."""


class Client:
    def __init__(self, address: str, timeout: float):
        """``address`` is "unix:/path/to/clamd.ctl" or "host:port"."""
        self.address = address
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        if self.address.startswith("unix:"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: object = self.address[5:]
        else:
            host, _, port = self.address.rpartition(":")
            sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET, socket.SOCK_STREAM)
            target = (host.strip("[]"), int(port))
        sock.settimeout(self.timeout)
        try:
            sock.connect(target)
        except OSError:
            sock.close()
            raise
        return sock

    def scan(self, data: bytes) -> str | None:
        """The signature name clamd found in ``data``, or None when clean. Raises ClamdError."""
        try:
            with self._connect() as sock:
                sock.sendall(b"zINSTREAM\0")
                for start in range(0, len(data), CHUNK):
                    chunk = data[start:start + CHUNK]
                    sock.sendall(struct.pack("!I", len(chunk)) + chunk)
                sock.sendall(struct.pack("!I", 0))
                answer = b""
                while not answer.endswith(b"\0"):
                    block = sock.recv(4096)
                    if not block:
                        break
                    answer += block
        except (OSError, ValueError) as e:
            raise ClamdError(f"{self.address}: {e}") from e
        text = answer.rstrip(b"\0").decode("utf-8", "replace").strip()
        if text.endswith(" FOUND"):
            return text.removeprefix("stream:").removesuffix(" FOUND").strip()
        if text.endswith(" OK"):
            return None
        raise ClamdError(f"{self.address}: unexpected answer {text[:200]!r}")
