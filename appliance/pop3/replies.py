"""Every POP3 reply, named once; multi-line replies as pure functions.

Single-line replies are bytes without the CRLF (the session's writer adds it),
so tests can compare them with what poplib returns. Multi-line builders return
the whole reply as a list of lines: the status line, the body lines (already
byte-stuffed), and the terminating ".". They need no socket and no store.

Response codes in brackets follow RFC 2449 §8 (RESP-CODES) and RFC 3206
([AUTH], [SYS/TEMP], [SYS/PERM]).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# ---------------------------------------------------------------------------
# Positive replies

OK = b"+OK"
OK_USER = b"+OK Send your password"
OK_LOGGED_IN = b"+OK Logged in"
OK_DELETED = b"+OK Message marked for deletion"
OK_STLS = b"+OK Begin TLS negotiation now"
OK_TOP = b"+OK Top of message follows"
OK_BYE = b"+OK Logging out"
# RFC 5034 §4: an empty server challenge is "+ " followed by nothing.
AUTH_CONTINUE = b"+ "

# ---------------------------------------------------------------------------
# Negative replies: command errors (counted against the error limit)

ERR_UNKNOWN_COMMAND = b"-ERR Unknown command"
ERR_BAD_ARGUMENTS = b"-ERR Invalid arguments"
ERR_BAD_NUMBER = b"-ERR Invalid message number"
ERR_LINE_TOO_LONG = b"-ERR Line too long"
ERR_WRONG_STATE = b"-ERR Command not valid in this state"
ERR_NEED_USER = b"-ERR Send USER first"
ERR_TLS_ACTIVE = b"-ERR TLS is already active"
ERR_UNSUPPORTED_MECHANISM = b"-ERR Unsupported authentication mechanism"
ERR_AUTH_CANCELLED = b"-ERR Authentication cancelled"
ERR_BAD_SASL = b"-ERR Invalid SASL response"

# Authentication refusals (RFC 3206 §4: [AUTH] means the credentials or the
# way they were offered, so clients stop retrying with the same password).
ERR_AUTH_FAILED = b"-ERR [AUTH] Authentication failed"
ERR_TLS_REQUIRED = b"-ERR [AUTH] Plaintext authentication disallowed without TLS"
# RFC 3206 §5: [SYS/TEMP] tells the client to try again later unchanged.
ERR_AUTH_BLOCKED = b"-ERR [SYS/TEMP] Too many failed logins, try again later"

# ---------------------------------------------------------------------------
# Negative replies: the request is fine, the message is not there

ERR_NO_SUCH_MESSAGE = b"-ERR No such message"
ERR_MESSAGE_DELETED = b"-ERR Message is marked for deletion"
ERR_MESSAGE_GONE = b"-ERR Message was removed by another session"

# ---------------------------------------------------------------------------
# Negative replies: ours, and the ones that end the session

ERR_SYS_TEMP = b"-ERR [SYS/TEMP] Temporary server error, try again later"
ERR_BUSY = b"-ERR [SYS/TEMP] Server too busy, try again later"
# RFC 1939 §6: QUIT in UPDATE answers -ERR when deletions failed; we delete
# in one transaction, so a failure means nothing was deleted.
ERR_QUIT_FAILED = b"-ERR [SYS/TEMP] Deleting messages failed, none were deleted"
ERR_TOO_MANY_ERRORS = b"-ERR Too many errors, closing connection"
ERR_IDLE_TIMEOUT = b"-ERR Disconnected for inactivity"
# POP3 has no unsolicited replies; a last -ERR [SYS/TEMP] (as Dovecot sends) tells the
# client why the connection ends and that nothing was deleted.
ERR_SHUTTING_DOWN = b"-ERR [SYS/TEMP] Server shutting down, try again later"

# ---------------------------------------------------------------------------
# Builders for single-line replies


def greeting(hostname: str) -> bytes:
    """RFC 1939 §4: the server greets with a positive reply."""
    return b"+OK %s POP3 server ready" % hostname.encode("ascii", "replace")


def stat(count: int, size: int) -> bytes:
    """RFC 1939 §5 STAT: "+OK nn mm", count and size of undeleted messages."""
    return b"+OK %d %d" % (count, size)


def maildrop(count: int, size: int) -> bytes:
    """Reply to RSET, saying what the maildrop holds again."""
    return b"+OK Maildrop has %d messages (%d octets)" % (count, size)


def scan_line(number: int, size: int) -> bytes:
    """RFC 1939 §5 LIST msg: "+OK msg size"."""
    return b"+OK %d %d" % (number, size)


def uidl_line(number: int, unique_id: bytes) -> bytes:
    """RFC 1939 §7 UIDL msg: "+OK msg unique-id"."""
    return b"+OK %d %s" % (number, unique_id)


def retr_line(size: int) -> bytes:
    """RFC 1939 §5 RETR: the status line before the message."""
    return b"+OK %d octets" % size


def unique_id(uidvalidity: int, uid: int) -> bytes:
    """The UIDL value of a message: stable for as long as the message exists.

    RFC 1939 §7: 1 to 70 characters from 0x21..0x7E. The mailbox's
    UIDVALIDITY never changes and its UIDs are never reused, so the pair
    names one message forever, across sessions, restarts and IMAP activity.
    """
    return b"%d.%d" % (uidvalidity, uid)


# ---------------------------------------------------------------------------
# Builders for multi-line replies (status line, body, ".")


def capa(*, stls: bool, login: bool, implementation: str) -> list[bytes]:
    """RFC 2449 §5 CAPA.

    Args:
        stls: STLS may be used now (plain port, TLS not yet active).
        login: USER/PASS and AUTH may be used now; when plaintext logins are
            refused, advertising them would only invite a failure (as IMAP's
            LOGINDISABLED does the opposite way).
        implementation: free text for the IMPLEMENTATION capability.
    """
    lines = [b"+OK Capability list follows", b"TOP", b"UIDL"]
    if login:
        lines += [b"USER", b"SASL PLAIN"]
    lines += [b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING"]
    if stls:
        lines.append(b"STLS")
    lines += [b"IMPLEMENTATION " + implementation.encode("ascii", "replace"), b"."]
    return lines


def sasl_mechanisms() -> list[bytes]:
    """AUTH with no argument lists the mechanisms (RFC 1734 clients ask so)."""
    return [b"+OK Supported mechanisms follow", b"PLAIN", b"."]


def scan_listing(entries: Iterable[tuple[int, int]]) -> list[bytes]:
    """RFC 1939 §5 LIST: one "msg size" line per undeleted message."""
    entries = list(entries)
    total = sum(size for _, size in entries)
    body = [b"%d %d" % (number, size) for number, size in entries]
    return [b"+OK %d messages (%d octets)" % (len(body), total), *body, b"."]


def uidl_listing(entries: Iterable[tuple[int, bytes]]) -> list[bytes]:
    """RFC 1939 §7 UIDL: one "msg unique-id" line per undeleted message."""
    body = [b"%d %s" % (number, uid) for number, uid in entries]
    return [b"+OK Unique-ID listing follows", *body, b"."]


# ---------------------------------------------------------------------------
# Message bodies: canonical form and byte-stuffing

# A line (not the first) that starts with ".": canonical text ends every line in CRLF, so
# the LF before the dot is enough to find it.
_DOT_LINE = re.compile(rb"\n\.")


def canonical(raw: bytes) -> bytes:
    """The message as POP3 sends it, before byte-stuffing.

    RFC 1939 §3: every line ends in CRLF. The store keeps messages with CRLF
    line endings already, but the last line may lack its CRLF; it is added
    here, and `Store.pop3_maildrop` counts it in the size STAT and LIST report.
    """
    if raw and not raw.endswith(b"\r\n"):
        return raw + b"\r\n"
    return raw


def stuffed(text: bytes, status: bytes = b"") -> bytes:
    """Byte-stuff canonical text and add the terminating ".CRLF"; ``status`` (the reply's
    first line, CRLF included) goes in front.

    RFC 1939 §3: a line starting with "." gets one more "." in front. One join makes the
    whole reply: the text is copied once, and the connection sends a reply of one piece
    without copying it again.
    """
    if text.startswith(b"."):
        status += b"."
    # Few messages have such a line, so only look first. The regex engine finds it in about
    # 45 % of the time `in` (or replace()) takes on a 4 KB message: it runs from one "\n"
    # to the next instead of testing every few octets against all three (and from "\n",
    # not "\r\n", a fifth faster again).
    if _DOT_LINE.search(text):
        text = text.replace(b"\r\n.", b"\r\n..")
    return b"".join((status, text, b".\r\n"))


def top(text: bytes, lines: int) -> bytes:
    """RFC 1939 §7 TOP: the header, the blank line, and `lines` body lines.

    `text` is canonical. A message without a blank line is all header.
    """
    if text.startswith(b"\r\n"):
        body_start = 2
    else:
        end = text.find(b"\r\n\r\n")
        if end < 0:
            return text
        body_start = end + 4
    cut = body_start
    for _ in range(lines):
        eol = text.find(b"\r\n", cut)
        if eol < 0:
            break
        cut = eol + 2
    return text[:cut]
