"""Every SMTP reply, named once, with its enhanced status code.

A reply is data (``Reply``); ``format_reply`` is the only code that turns one into
bytes: code, enhanced status code (RFC 2034, RFC 3463), "-" on every line but the
last, CRLF. Handlers never write raw bytes. Tests compare against these names.

The greeting, the EHLO/HELO replies and the 334/354 intermediate replies carry no
enhanced code: RFC 2034 §3 exempts the greeting and the HELO/EHLO replies, and
RFC 3463 has no class 3.

Texts are generic on purpose: the log gets the details.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache


@dataclass(frozen=True)
class Reply:
    code: int  # the three-digit reply code
    status: str | None  # enhanced status code "x.y.z", None where RFC 2034 exempts it
    lines: tuple[str, ...]  # one text per line, at least one

    @property
    def text(self) -> str:
        return " / ".join(self.lines)

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    @cached_property
    def wire(self) -> bytes:
        """The wire form (see ``format_reply``), rendered once per reply object."""
        out = []
        last = len(self.lines) - 1
        for i, text in enumerate(self.lines):
            sep = " " if i == last else "-"
            head = f"{self.code}{sep}{self.status} " if self.status else f"{self.code}{sep}"
            out.append(f"{head}{text}\r\n")
        # surrogateescape: an echoed client address keeps its original bytes
        return "".join(out).encode("utf-8", "surrogateescape")


def reply(code: int, status: str | None, *lines: str) -> Reply:
    return Reply(code, status, tuple(lines) or ("",))


def format_reply(r: Reply) -> bytes:
    """The wire form: RFC 5321 §4.2.1 multiline replies, enhanced code on each line."""
    return r.wire


# --- 2xx -----------------------------------------------------------------
R214_HELP = reply(
    214,
    "2.0.0",
    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY EXPN STARTTLS AUTH",
    "See RFC 5321; HELP <command> shows its syntax",
)
R220_READY_TLS = reply(220, "2.0.0", "Ready to start TLS")
R221_BYE = reply(221, "2.0.0", "Bye")
R235_AUTH_OK = reply(235, "2.7.0", "Authentication successful")
R250_OK = reply(250, "2.0.0", "OK")
R250_RESET = reply(250, "2.0.0", "Reset OK")
R250_SENDER_OK = reply(250, "2.1.0", "Sender OK")
R250_RCPT_OK = reply(250, "2.1.5", "Recipient OK")
R252_CANNOT_VRFY = reply(252, "2.5.0", "Cannot verify the user, but will accept mail and attempt delivery")

# --- 3xx (no enhanced code: RFC 3463 has no class 3) -----------------------
R334_EMPTY = reply(334, None, "")
R334_USERNAME = reply(334, None, "VXNlcm5hbWU6")  # base64 "Username:" (AUTH LOGIN)
R334_PASSWORD = reply(334, None, "UGFzc3dvcmQ6")  # base64 "Password:"
R354_START_DATA = reply(354, None, "End data with <CR><LF>.<CR><LF>")

# --- 4xx -----------------------------------------------------------------
R421_TOO_BUSY = reply(421, "4.3.2", "Too busy, try again later")
R421_SHUTTING_DOWN = reply(421, "4.3.2", "Service shutting down, try again later")
R421_TIMEOUT = reply(421, "4.4.2", "Timeout, closing connection")
R421_TOO_MANY_ERRORS = reply(421, "4.7.0", "Too many errors, closing connection")
R421_TOO_MANY_MESSAGES = reply(421, "4.7.0", "Too many messages in this session, reconnect")
R451_LOCAL_ERROR = reply(451, "4.3.0", "Local error in processing, try again later")
R452_TOO_MANY_RCPTS = reply(452, "4.5.3", "Too many recipients")
R452_MAILBOX_FULL = reply(452, "4.2.2", "Mailbox full, try again later")
R452_STORAGE_FULL = reply(452, "4.3.1", "Insufficient system storage, try again later")
R454_AUTH_TEMPORARY = reply(454, "4.7.0", "Temporary authentication failure")

# --- 5xx: syntax ----------------------------------------------------------
R500_UNKNOWN = reply(500, "5.5.2", "Command not recognized")
R500_LINE_TOO_LONG = reply(500, "5.5.2", "Line too long")
R500_NOT_SMTP = reply(500, "5.5.1", "This is an SMTP server, speak SMTP")
R500_BAD_BYTES = reply(500, "5.5.2", "Invalid characters in command")
R501_NO_ARGUMENTS = reply(501, "5.5.4", "This command takes no arguments")
R501_EHLO_SYNTAX = reply(501, "5.5.4", "Syntax: EHLO hostname")
R501_HELO_SYNTAX = reply(501, "5.5.4", "Syntax: HELO hostname")
R501_MAIL_SYNTAX = reply(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]")
R501_RCPT_SYNTAX = reply(501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]")
R501_BAD_SENDER = reply(501, "5.1.7", "Bad sender address syntax")
R501_BAD_RECIPIENT = reply(501, "5.1.3", "Bad recipient address syntax")
R501_BAD_PARAMETER = reply(501, "5.5.4", "Invalid parameter value")
R501_DUPLICATE_PARAMETER = reply(501, "5.5.4", "Parameter given twice")
R501_BDAT_SYNTAX = reply(501, "5.5.4", "Syntax: BDAT size [LAST]")
R501_VRFY_SYNTAX = reply(501, "5.5.4", "Syntax: VRFY address")
R501_EXPN_SYNTAX = reply(501, "5.5.4", "Syntax: EXPN list")
R501_AUTH_SYNTAX = reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
R501_AUTH_CANCELLED = reply(501, "5.7.0", "Authentication cancelled")
R501_BAD_BASE64 = reply(501, "5.5.2", "Invalid base64 data")
R503_NEED_HELO = reply(503, "5.5.1", "Send EHLO or HELO first")
R503_NEED_MAIL = reply(503, "5.5.1", "Need MAIL command first")
R503_NEED_RCPT = reply(503, "5.5.1", "Need RCPT command first")
R503_NESTED_MAIL = reply(503, "5.5.1", "Sender already given")
R503_BAD_SEQUENCE = reply(503, "5.5.1", "Bad sequence of commands")
R503_ALREADY_AUTHENTICATED = reply(503, "5.5.1", "Already authenticated")
R503_AUTH_IN_TRANSACTION = reply(503, "5.5.1", "AUTH not allowed during a mail transaction")
R503_TLS_ACTIVE = reply(503, "5.5.1", "TLS already active")
R503_DATA_AFTER_BDAT = reply(503, "5.5.1", "DATA not allowed after BDAT")
R503_BINARYMIME_NEEDS_BDAT = reply(503, "5.5.1", "BODY=BINARYMIME requires BDAT")
R504_AUTH_MECHANISM = reply(504, "5.5.4", "Unrecognized authentication mechanism")
R504_HELP_TOPIC = reply(504, "5.5.1", "No help for that topic")
R555_UNKNOWN_PARAMETER = reply(555, "5.5.4", "Unsupported parameter")

# --- 5xx: policy ----------------------------------------------------------
R530_NEED_TLS = reply(530, "5.7.0", "Must issue a STARTTLS command first")
R530_NEED_AUTH = reply(530, "5.7.0", "Authentication required")
R535_AUTH_FAILED = reply(535, "5.7.8", "Authentication credentials invalid")
R538_ENCRYPTION_REQUIRED = reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
R550_NO_SUCH_USER = reply(550, "5.1.1", "No such user here")
R550_BARE_NEWLINE = reply(550, "5.5.2", "Bare <CR> or <LF> in message; lines must end with <CR><LF>")
R550_LINE_TOO_LONG = reply(550, "5.6.0", "Message has a line longer than 998 octets")
R552_MAILBOX_FULL = reply(552, "5.2.2", "Mailbox full")
R553_NOT_YOUR_ADDRESS = reply(553, "5.7.1", "Sender address not owned by the authenticated user")
R553_UTF8_NEEDS_SMTPUTF8 = reply(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter")
R554_RELAY_DENIED = reply(554, "5.7.1", "Relay access denied")


# --- builders --------------------------------------------------------------
# The ones every connection asks for are pure functions of few inputs: kept, so each
# connection reuses one Reply and its rendered wire form.
@lru_cache(maxsize=64)
def greeting(hostname: str) -> Reply:
    """220 banner (RFC 5321 §4.2: the first word is our domain)."""
    return reply(220, None, f"{hostname} ESMTP Kotakpos")


@lru_cache(maxsize=256)
def helo_reply(hostname: str, client_name: str) -> Reply:
    return reply(250, None, f"{hostname} greets {client_name}")


def queued(message_id: str) -> Reply:
    """250 after the final dot or the last BDAT: the message is durable."""
    return reply(250, "2.0.0", f"OK queued as {message_id}")


@lru_cache(maxsize=8)
def message_too_big(limit: int) -> Reply:
    """RFC 1870 §6.1 and §6.3: the limit in words, so a person reading a bounce knows it."""
    return reply(552, "5.3.4", f"Message too big: the limit is {size_text(limit)}")


def size_text(octets: int) -> str:
    """A size as people read it: ``36 MB``, ``1.5 MB``, ``64 KB``, ``900 bytes`` (MB = 2**20 bytes)."""
    for unit, scale in (("MB", 2 ** 20), ("KB", 2 ** 10)):
        if octets >= scale:
            return f"{round(octets / scale, 1):g} {unit}"
    return f"{octets} bytes"


def bdat_chunk_ok(octets: int) -> Reply:
    """250 for a BDAT chunk that is not the last (RFC 3030 §2)."""
    return reply(250, "2.0.0", f"{octets} octets received")


def auth_challenge(b64: str) -> Reply:
    """334 with a base64 challenge (RFC 4954 §4)."""
    return reply(334, None, b64)


def vrfy_ok(address: str) -> Reply:
    return reply(250, "2.1.5", f"<{address}>")


def expn_list(members: list[str]) -> Reply:
    """RFC 5321 §3.5.2: one member per line."""
    return reply(250, "2.1.5", *(f"<{m}>" for m in members))


def help_topic(syntax: str) -> Reply:
    return reply(214, "2.0.0", syntax)


@lru_cache(maxsize=1024)
def ehlo_reply(
    hostname: str,
    client_name: str,
    *,
    size_limit: int,
    is_tls: bool,
    authenticated: bool,
    plaintext_auth_allowed: bool,
) -> Reply:
    """The EHLO reply as a pure function of the session's situation (RFC 5321 §4.1.1.1).

    STARTTLS is offered only outside TLS (RFC 3207 §4.2: never again once inside; the
    server always has a certificate, self-signed at first start);
    AUTH only inside TLS unless plaintext is allowed for this client, and not after
    a successful AUTH (RFC 4954 §4: a second AUTH is refused).
    """
    lines = [
        f"{hostname} greets {client_name}",
        "PIPELINING",
        f"SIZE {size_limit}",
        "8BITMIME",
        "BINARYMIME",
        "CHUNKING",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "DSN",
    ]
    if not is_tls:
        lines.append("STARTTLS")
    if (is_tls or plaintext_auth_allowed) and not authenticated:
        lines.append("AUTH PLAIN LOGIN")
    return Reply(250, None, tuple(lines))
