"""What a user's own Sieve script must be before it is stored.

ManageSieve (RFC 5804) and the account page's Sieve editor store a user's scripts through
these two functions, so both refuse the same names and the same scripts for the same
reasons, within the same ``[managesieve]`` limits. What a script may say is the parser's
(`appliance.mda.sieve`), the very one that runs it at delivery.
"""

from __future__ import annotations

import unicodedata

from appliance.mda import sieve

# RFC 5804 §1.6: names of at least 128 characters must be allowed.
MAX_NAME_LENGTH = 256


class ScriptRefused(Exception):
    """A script name or text that is not stored; the subclass says why."""


class BadName(ScriptRefused):
    """Not a name RFC 5804 §1.6 allows (empty, too long, control characters, not UTF-8)."""


class TooBig(ScriptRefused):
    """Over ``[managesieve] max_script_size``."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"{size} octets, over the limit of {limit}")
        self.size = size    # octets of the script as UTF-8
        self.limit = limit  # the limit it went over


class NotUtf8(ScriptRefused):
    """RFC 5804 §2.6: a script is UTF-8 text."""


class Invalid(ScriptRefused):
    """The parser refused it: ``line`` (1-based) and ``reason`` say where and why."""

    def __init__(self, line: int, reason: str):
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def checked_name(raw: bytes | str) -> str:
    """The script name as text, when RFC 5804 §1.6 allows it: non-empty UTF-8 of at most
    ``MAX_NAME_LENGTH`` characters, without control characters or line and paragraph
    separators. Raises BadName."""
    try:
        name = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise BadName("not UTF-8") from None
    if not name or len(name) > MAX_NAME_LENGTH or any(unicodedata.category(c) == "Cc" or c in "\u2028\u2029"
                                                      for c in name):
        raise BadName(repr(name))
    return name


def checked_script(raw: bytes | str, max_size: int) -> tuple[str, list[sieve.Command]]:
    """The script as text and as commands, once it fits ``max_size`` octets, is UTF-8 and
    parses (RFC 5804 §2.6). Raises TooBig, NotUtf8 or Invalid."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if len(data) > max_size:
        raise TooBig(len(data), max_size)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotUtf8("not UTF-8") from None
    try:
        return text, sieve.parse(text)
    except sieve.SieveError as e:
        raise Invalid(e.line, e.reason) from None
