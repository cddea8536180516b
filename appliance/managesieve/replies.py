"""Every ManageSieve response, named once, and the formatting of strings (RFC 5804 §4).

A response is ``OK`` / ``NO`` / ``BYE``, an optional response code in parentheses and an
optional human-readable string. Lines are bytes without the CRLF (the session's writer
adds it); multi-line answers (capabilities, LISTSCRIPTS, GETSCRIPT) are pure functions
that return lines, so they are tested without a socket.
"""

from __future__ import annotations

from collections.abc import Iterable

# A quoted string may hold any UTF-8 but CR, LF and NUL (RFC 5804 §4 SAFE-CHAR); longer
# texts go as literals, as RFC 5804 §4 asks for strings over 1024 octets.
_QUOTED_MAX = 1024


def string(value: str | bytes) -> bytes:
    """A string as the server sends it: quoted when it can be, else a literal ``{n}``."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= _QUOTED_MAX and not any(c in data for c in b"\r\n\0"):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def response(kind: bytes, text: str | None = None, code: str | None = None, code_arg: str | bytes | None = None) -> bytes:
    """``OK`` / ``NO`` / ``BYE`` with an optional response code (and its string) and text."""
    line = kind
    if code is not None:
        line += b" (" + code.encode("ascii") + (b" " + string(code_arg) if code_arg is not None else b"") + b")"
    if text is not None:
        line += b" " + string(text)
    return line


def ok(text: str | None = None, code: str | None = None, code_arg: str | bytes | None = None) -> bytes:
    return response(b"OK", text, code, code_arg)


def no(text: str | None = None, code: str | None = None, code_arg: str | bytes | None = None) -> bytes:
    return response(b"NO", text, code, code_arg)


def bye(text: str | None = None, code: str | None = None) -> bytes:
    return response(b"BYE", text, code)


# ---------------------------------------------------------------------------
# Positive responses

OK = ok()
OK_DONE = ok("Done")
OK_LOGGED_IN = ok("Logged in")
OK_LOGGED_OUT = ok("Logged out")  # UNAUTHENTICATE (RFC 5804 §2.14.1)
OK_BEGIN_TLS = ok("Begin TLS negotiation now")
OK_LOGOUT = ok("Logout")
OK_STORED = ok("Script stored")
OK_VALID = ok("Script is valid")
OK_SPACE = ok("Putscript would succeed")
OK_ACTIVATED = ok("Script activated")
OK_DEACTIVATED = ok("No script active")
OK_DELETED = ok("Script deleted")
OK_RENAMED = ok("Script renamed")
OK_LISTED = ok("Listscripts completed")
OK_GOT = ok("Getscript completed")
# RFC 5804 §2.1: an empty server challenge, answered by the client's response string.
SASL_CONTINUE = string("")

# ---------------------------------------------------------------------------
# Command errors (counted against the error limit)

NO_UNKNOWN_COMMAND = no("Unknown command")
NO_BAD_ARGUMENTS = no("Invalid arguments")
NO_LINE_TOO_LONG = no("Line too long")
NO_NOT_AUTHENTICATED = no("Authenticate first")
NO_ALREADY_AUTHENTICATED = no("Already authenticated")
NO_TLS_ACTIVE = no("TLS is already active")
NO_BAD_NAME = no("Invalid script name")
NO_NOT_UTF8 = no("Script is not valid UTF-8")
NO_UNSUPPORTED_MECHANISM = no("Unsupported authentication mechanism")
NO_BAD_SASL = no("Invalid SASL response")
NO_AUTH_CANCELLED = no("Authentication cancelled")

# ---------------------------------------------------------------------------
# Authentication refusals (RFC 5804 §1.3)

NO_AUTH_FAILED = no("Authentication failed")
# ENCRYPT-NEEDED: "use STARTTLS first", what every other port of ours says before TLS.
NO_ENCRYPT_NEEDED = no("Plaintext authentication disallowed without TLS", "ENCRYPT-NEEDED")
# TRYLATER: a temporary refusal; the same request may succeed later.
NO_AUTH_BLOCKED = no("Too many failed logins, try again later", "TRYLATER")

# ---------------------------------------------------------------------------
# Refusals of well-formed requests (RFC 5804 §1.3 response codes)

NO_NONEXISTENT = no("There is no script by that name", "NONEXISTENT")
NO_ALREADYEXISTS = no("A script by that name already exists", "ALREADYEXISTS")
NO_ACTIVE = no("The active script cannot be deleted; deactivate it first", "ACTIVE")
NO_MAXSIZE = no("Script is too big", "QUOTA/MAXSIZE")
NO_MAXSCRIPTS = no("Too many scripts", "QUOTA/MAXSCRIPTS")

# ---------------------------------------------------------------------------
# Ours, and the ones that end the session

NO_TRYLATER = no("Temporary server error, try again later", "TRYLATER")
BYE_BUSY = bye("Server too busy, try again later", "TRYLATER")
BYE_TOO_MANY_ERRORS = bye("Too many errors, closing connection")
BYE_IDLE_TIMEOUT = bye("Disconnected for inactivity")
BYE_SHUTDOWN = bye("Server shutting down, try again later", "TRYLATER")
BYE_LITERAL_TOO_BIG = bye("Literal too big, closing connection", "QUOTA/MAXSIZE")
BYE_COMMAND_TOO_LONG = bye("Command too long, closing connection")


def invalid_script(line: int, reason: str) -> bytes:
    """PUTSCRIPT and CHECKSCRIPT of a script that does not parse (RFC 5804 §2.6)."""
    return no(f"line {line}: {reason}")


def stored_with_warnings(warnings: list[str]) -> bytes:
    """RFC 5804 §1.3 WARNINGS: stored, but the script may not do what its author meant."""
    return ok("; ".join(warnings), "WARNINGS")


def missing_folder(line: int, folder: str) -> str:
    return f'line {line}: fileinto "{folder}": no such folder, so this mail goes to INBOX (create it, or use :create)'


def noop(tag: bytes | None) -> bytes:
    """RFC 5804 §2.13: NOOP echoes its argument in a TAG response code."""
    return ok("Done", "TAG", tag) if tag is not None else OK_DONE


# ---------------------------------------------------------------------------
# Multi-line answers


def capabilities(*, implementation: str, sasl: Iterable[str], sieve: Iterable[str], starttls: bool,
                 max_redirects: int, owner: str | None) -> list[bytes]:
    """RFC 5804 §1.7: the capability lines, ending with OK. Sent as the greeting, after
    STARTTLS, and for CAPABILITY.

    Args:
        sasl: mechanisms usable now (none before TLS: passwords only inside TLS).
        sieve: the Sieve extensions the interpreter supports.
        starttls: STARTTLS may be used now.
        owner: the logged-in user, once there is one.
    """
    lines = [b'"IMPLEMENTATION" ' + string(implementation),
             b'"SASL" ' + string(" ".join(sasl)),
             b'"SIEVE" ' + string(" ".join(sorted(sieve)))]
    if starttls:
        lines.append(b'"STARTTLS"')
    lines += [b'"MAXREDIRECTS" ' + string(str(max_redirects)), b'"VERSION" "1.0"', b'"UNAUTHENTICATE"']
    if owner is not None:
        lines.append(b'"OWNER" ' + string(owner))
    lines.append(OK)
    return lines


def script_listing(scripts: Iterable[tuple[str, bool]]) -> list[bytes]:
    """RFC 5804 §2.7 LISTSCRIPTS: one name per line, the active one marked, then OK."""
    return [string(name) + (b" ACTIVE" if active else b"") for name, active in scripts] + [OK_LISTED]


def script_text(script: str) -> list[bytes]:
    """RFC 5804 §2.9 GETSCRIPT: the script as a literal, then OK."""
    data = script.encode("utf-8")
    return [b"{%d}\r\n" % len(data) + data, OK_GOT]
