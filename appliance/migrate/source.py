"""What every source of mail yields: folders of messages with their flags and dates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from appliance.imap import utf7

# RFC 3501 §2.3.2 system flags a message can carry into a store (\Recent is per session).
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")


@dataclass(frozen=True)
class SourceMessage:
    raw: bytes
    flags: frozenset[str]
    internaldate: float
    label: str             # names the message in errors: "Sent.mbox, message 12", "INBOX UID 7"


@dataclass(frozen=True)
class SourceFolder:
    name: str                                   # Kotakpos folder name ("/" between levels)
    special_use: str | None                     # RFC 6154 attribute when the source says
    count: int                                  # how many messages ``messages()`` yields (for progress)
    messages: Callable[[], Iterator[SourceMessage]]


# A folder level becomes one file name: modified UTF-7 (RFC 3501 §5.1.3) keeps it ASCII, and
# "." is written "&AC4-" (its UTF-7 form, which the encoder never emits for a plain ".") so a
# level can be neither a hidden file, "..", nor split by the Maildir++ "." separator.
DOT = "&AC4-"


def level_to_file(level: str, escape_every_dot: bool) -> str:
    text = utf7.encode(level).decode("ascii")
    if escape_every_dot:
        return text.replace(".", DOT)
    return DOT + text[1:] if text.startswith(".") else text


def file_to_level(text: str) -> str:
    try:
        return utf7.decode(text.replace(DOT, ".").encode("ascii", "surrogateescape"))
    except (utf7.Utf7Error, UnicodeEncodeError):
        return text  # a name another program wrote as plain text
