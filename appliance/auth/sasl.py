"""SASL mechanisms shared by SMTP, POP3 and IMAP (RFC 4616 PLAIN; LOGIN as clients use it)."""

from __future__ import annotations

import base64
import binascii


class SaslError(Exception):
    """The client's SASL data cannot be decoded; answer with the protocol's syntax error."""


def b64decode(text: str | bytes) -> bytes:
    data = text.strip() if isinstance(text, bytes) else text.strip().encode("ascii", "replace")
    if data == b"=":
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SaslError("invalid base64") from None


def decode_plain(b64: str | bytes) -> tuple[str, str, str]:
    """RFC 4616: ``[authzid] NUL authcid NUL passwd`` → (authzid, authcid, password)."""
    parts = b64decode(b64).split(b"\x00")
    if len(parts) != 3 or not parts[1]:
        raise SaslError("malformed PLAIN response")
    try:
        authzid, authcid, password = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        raise SaslError("PLAIN response is not UTF-8") from None
    return authzid, authcid, password


def decode_text(b64: str | bytes) -> str:
    """One base64 line of the LOGIN mechanism (user name or password)."""
    try:
        return b64decode(b64).decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError("not UTF-8") from None
