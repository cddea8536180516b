"""POP3 command lines → command objects. No sockets, no store, no state.

`parse_command(line)` takes one complete line (terminator included or not)
and returns a `Command` or an `InvalidCommand` that carries the -ERR line to
answer. Whether a verb is legal *now* is the session's business; this module
knows only the grammar of each verb (RFC 1939 §3: a case-insensitive keyword,
arguments separated by spaces).
"""

from __future__ import annotations

from typing import NamedTuple

from appliance.pop3 import replies

# Verbs whose argument grammar this module knows; anything else is unknown.
NO_ARGUMENTS = frozenset({"STLS", "CAPA", "STAT", "NOOP", "RSET", "QUIT"})
OPTIONAL_NUMBER = frozenset({"LIST", "UIDL"})
REQUIRED_NUMBER = frozenset({"RETR", "DELE"})
VERBS = NO_ARGUMENTS | OPTIONAL_NUMBER | REQUIRED_NUMBER | {"TOP", "USER", "PASS", "AUTH"}

# A message number or line count longer than this is nonsense, not a number
# (keeps int() away from megabyte-long digit strings).
_MAX_DIGITS = 20


# Named tuples rather than frozen dataclasses: as immutable, and made in half the time,
# which counts once per command (a maildrop read in full is one RETR per message).
class Command(NamedTuple):
    """One well-formed command. Only the fields its verb uses are set."""

    verb: str  # upper-case wire verb; the session dispatches on it
    number: int | None = None  # message number: LIST, UIDL, RETR, DELE, TOP
    lines: int | None = None  # TOP: how many body lines the client wants
    text: str | None = None  # USER name, PASS password, AUTH mechanism (upper case)
    initial: str | None = None  # AUTH initial response (RFC 5034 §4); "=" means empty


class InvalidCommand(NamedTuple):
    """A line that is not a well-formed command; the session answers `reply`."""

    verb: str | None  # the verb when it is one we know, for logging
    reply: bytes  # the -ERR line to send


def parse_command(line: bytes) -> Command | InvalidCommand:
    """Parse one command line (RFC 1939 §3, RFC 2449, RFC 2595, RFC 5034)."""
    line = line.removesuffix(b"\n").removesuffix(b"\r")
    verb_bytes, _, rest = line.partition(b" ")
    # RFC 1939 §3: keywords are 3 or 4 characters (bytes.isalpha is ASCII only).
    if not (3 <= len(verb_bytes) <= 4 and verb_bytes.isalpha()):
        return InvalidCommand(None, replies.ERR_UNKNOWN_COMMAND)
    verb = verb_bytes.decode("ascii").upper()
    if verb not in VERBS:
        return InvalidCommand(None, replies.ERR_UNKNOWN_COMMAND)

    if verb == "PASS":
        # RFC 1939 §7: PASS has exactly one argument, so spaces in it belong
        # to the password; only the single separator after the verb goes.
        if not rest:
            return InvalidCommand(verb, replies.ERR_BAD_ARGUMENTS)
        return Command(verb, text=_text(rest))

    args = rest.split()
    # RETR and DELE first: a client that empties a maildrop sends them once per message.
    if verb in REQUIRED_NUMBER:
        if len(args) != 1:
            return InvalidCommand(verb, replies.ERR_BAD_ARGUMENTS)
        return _numbered(verb, args[0])
    if verb in NO_ARGUMENTS:
        return Command(verb) if not args else InvalidCommand(verb, replies.ERR_BAD_ARGUMENTS)
    if verb in OPTIONAL_NUMBER:
        if not args:
            return Command(verb)
        if len(args) != 1:
            return InvalidCommand(verb, replies.ERR_BAD_ARGUMENTS)
        return _numbered(verb, args[0])
    if verb == "TOP":
        # RFC 1939 §7: TOP msg n, n non-negative.
        if len(args) != 2:
            return InvalidCommand(verb, replies.ERR_BAD_ARGUMENTS)
        number, lines = _digits(args[0]), _digits(args[1])
        if number is None or lines is None:
            return InvalidCommand(verb, replies.ERR_BAD_NUMBER)
        return Command(verb, number=number, lines=lines)
    if verb == "USER":
        if len(args) != 1:
            return InvalidCommand(verb, replies.ERR_BAD_ARGUMENTS)
        return Command(verb, text=_text(args[0]))
    # AUTH [mechanism [initial-response]]  (RFC 5034 §4)
    if not args:
        return Command(verb)
    if len(args) > 2 or not args[0].isascii():
        return InvalidCommand(verb, replies.ERR_BAD_ARGUMENTS)
    mechanism = args[0].decode("ascii").upper()
    initial = args[1].decode("ascii", "replace") if len(args) == 2 else None
    return Command(verb, text=mechanism, initial=initial)


def _numbered(verb: str, token: bytes) -> Command | InvalidCommand:
    number = _digits(token)
    if number is None:
        return InvalidCommand(verb, replies.ERR_BAD_NUMBER)
    return Command(verb, number=number)


def _digits(token: bytes) -> int | None:
    """A non-negative decimal, or None. Signs and other characters are refused."""
    if not token or len(token) > _MAX_DIGITS or not token.isdigit():
        return None
    return int(token)


def _text(raw: bytes) -> str:
    # Credentials are compared, never interpreted: keep undecodable bytes.
    return raw.decode("utf-8", "surrogateescape")
