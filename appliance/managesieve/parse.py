"""ManageSieve commands → command objects. No sockets, no store, no state.

`parse_command(data)` takes one complete command (literals inlined by the reader, CRLF
included) and returns a `Command` or an `InvalidCommand` that carries the NO to answer.
Whether a verb is legal *now* is the session's business; this module knows only the
grammar (RFC 5804 §4): a case-insensitive command name, then arguments separated by one
space, each a string (quoted or literal) or a number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.managesieve import replies

# The arguments of each verb: "s" a string, "n" a number, "s?" an optional last string.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "AUTHENTICATE": ("s", "s?"),   # RFC 5804 §2.1: mechanism [initial response]
    "STARTTLS": (),                # §2.2
    "LOGOUT": (),                  # §2.3
    "CAPABILITY": (),              # §2.4
    "HAVESPACE": ("s", "n"),       # §2.5: name, size
    "PUTSCRIPT": ("s", "s"),       # §2.6: name, script
    "LISTSCRIPTS": (),             # §2.7
    "SETACTIVE": ("s",),           # §2.8: name ("" deactivates)
    "GETSCRIPT": ("s",),           # §2.9
    "DELETESCRIPT": ("s",),        # §2.10
    "RENAMESCRIPT": ("s", "s"),    # §2.11.1: old, new
    "CHECKSCRIPT": ("s",),         # §2.12
    "NOOP": ("s?",),               # §2.13: an optional tag to echo
    "UNAUTHENTICATE": (),          # §2.14.1
}

# RFC 5804 §4: literal-c2s = "{" number "+}" CRLF; we take "{n}" too (see the package doc).
LITERAL = re.compile(rb"\{(\d{1,10})\+?\}\r?\n")
_NUMBER_MAX = 4294967295  # RFC 5804 §4: number is a 32-bit unsigned integer
_VERB = re.compile(rb"[A-Za-z]{1,20}")


@dataclass(frozen=True)
class Command:
    """One well-formed command: its verb and arguments as its signature says."""

    verb: str  # upper-case wire verb; the session dispatches on it
    args: tuple  # bytes for strings, int for numbers, in order; an absent optional string is left out


@dataclass(frozen=True)
class InvalidCommand:
    """Bytes that are not a well-formed command; the session answers `reply`."""

    verb: str | None  # the verb when it is one we know, for logging
    reply: bytes  # the NO line to send


class _Invalid(Exception):
    pass


def parse_command(data: bytes) -> Command | InvalidCommand:
    """Parse one command (RFC 5804 §4, grammar: command)."""
    match = _VERB.match(data)
    if match is None:
        return InvalidCommand(None, replies.NO_UNKNOWN_COMMAND)
    verb = match.group().decode("ascii").upper()
    signature = SIGNATURES.get(verb)
    if signature is None:
        return InvalidCommand(None, replies.NO_UNKNOWN_COMMAND)
    try:
        args, end = _arguments(data, match.end())
    except _Invalid:
        return InvalidCommand(verb, replies.NO_BAD_ARGUMENTS)
    if data[end:] not in (b"\r\n", b"\n") or not _fits(args, signature):
        return InvalidCommand(verb, replies.NO_BAD_ARGUMENTS)
    return Command(verb, tuple(args))


def parse_string_line(data: bytes) -> bytes | None:
    """One string alone on a line: the client's answer to a SASL challenge (RFC 5804 §2.1).
    None when it is anything else."""
    try:
        value, end = _argument(data, 0)
    except _Invalid:
        return None
    if not isinstance(value, bytes) or data[end:] not in (b"\r\n", b"\n"):
        return None
    return value


def _fits(args: list, signature: tuple[str, ...]) -> bool:
    required = [kind for kind in signature if not kind.endswith("?")]
    if not len(required) <= len(args) <= len(signature):
        return False
    return all(isinstance(arg, int) == (kind == "n") for arg, kind in zip(args, signature))


def _arguments(data: bytes, pos: int) -> tuple[list, int]:
    args = []
    while data[pos:pos + 1] == b" ":
        value, pos = _argument(data, pos + 1)
        args.append(value)
    return args, pos


def _argument(data: bytes, pos: int) -> tuple[bytes | int, int]:
    first = data[pos:pos + 1]
    if first == b'"':
        return _quoted(data, pos + 1)
    if first == b"{":
        match = LITERAL.match(data, pos)
        if match is None:
            raise _Invalid()
        size = int(match.group(1))
        start = match.end()
        if len(data) < start + size:
            raise _Invalid()
        return data[start:start + size], start + size
    end = pos
    while data[end:end + 1].isdigit():
        end += 1
    if end == pos or end - pos > 10 or int(data[pos:end]) > _NUMBER_MAX:
        raise _Invalid()
    return int(data[pos:end]), end


def _quoted(data: bytes, pos: int) -> tuple[bytes, int]:
    """RFC 5804 §4 quoted: DQUOTE *QUOTED-CHAR DQUOTE; only \\" and \\\\ are escapes."""
    out = bytearray()
    while pos < len(data):
        c = data[pos]
        if c == 0x22:  # "
            return bytes(out), pos + 1
        if c == 0x5C:  # backslash
            escaped = data[pos + 1:pos + 2]
            if escaped not in (b'"', b"\\"):
                raise _Invalid()
            out += escaped
            pos += 2
            continue
        if c in (0x0D, 0x0A, 0x00):
            raise _Invalid()
        out.append(c)
        pos += 1
    raise _Invalid()
