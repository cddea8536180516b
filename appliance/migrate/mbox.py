"""mbox files in the mboxrd form (RFC 4155; the quoting of qmail's mbox(5)).

Each message starts with a ``From sender date`` line; a body line that looks like one
(">"s and then "From ") gets one more ">" on writing and loses one on reading, so any
message comes back byte for byte. Lines end in LF in the file and CRLF in the store.
"""

from __future__ import annotations

import calendar
import email.utils
import re
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from appliance.migrate.headers import add_status, take_status
from appliance.migrate.source import SourceFolder, SourceMessage, file_to_level, level_to_file

SUFFIX = ".mbox"
FROM_QUOTED = re.compile(rb"^(>*From )", re.MULTILINE)
UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)


def is_mbox(path: Path) -> bool:
    """A file that is empty or starts like an mbox."""
    with open(path, "rb") as f:
        head = f.read(5)
    return head in (b"", b"From ")


def _from_line_date(line: bytes) -> float | None:
    # "From sender Thu Nov 27 13:02:43 2026" (asctime, UTC), sometimes followed by a zone.
    match = re.search(rb"(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})", line)
    if not match:
        return None
    try:
        return float(calendar.timegm(time.strptime(match.group(1).decode(), "%a %b %d %H:%M:%S %Y")))
    except ValueError:
        return None


def _date_header(text: bytes) -> float | None:
    match = re.search(rb"^Date:[ \t]*(.*)$", text[:text.find(b"\n\n") + 1 or len(text)], re.MULTILINE | re.IGNORECASE)
    if not match:
        return None
    try:
        return email.utils.parsedate_to_datetime(match.group(1).decode("ascii", "replace")).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _spans(path: Path) -> list[tuple[int, int]]:
    """(start, end) of each message's From_ line and text in the file."""
    starts = []
    offset = 0
    previous_blank = True
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(b"From ") and previous_blank:
                starts.append(offset)
            previous_blank = line in (b"\n", b"\r\n")
            offset += len(line)
    return [(s, e) for s, e in zip(starts, starts[1:] + [offset])]


def read(path: Path, name: str) -> SourceFolder:
    """One mbox file as the folder ``name``."""
    spans = _spans(path)

    def messages() -> Iterator[SourceMessage]:
        with open(path, "rb") as f:
            for number, (start, end) in enumerate(spans, 1):
                f.seek(start)
                chunk = f.read(end - start)
                # A file written with CRLF line ends reads like any other; the store makes them CRLF again.
                from_line, _, text = chunk.replace(b"\r\n", b"\n").partition(b"\n")
                # The empty line before the next From_ line belongs to the file, not the message.
                if end != spans[-1][1] or text.endswith(b"\n\n"):
                    text = text[:-1] if text.endswith(b"\n") else text
                text, flags = take_status(UNQUOTE.sub(rb"\1", text))
                when = _from_line_date(from_line) or _date_header(text) or time.time()
                yield SourceMessage(text, flags, when, f"{path.name}, message {number}")

    return SourceFolder(name, None, len(spans), messages)


def write(out: BinaryIO, raw: bytes, flags: frozenset[str], internaldate: float) -> None:
    """Append one stored message (CRLF line ends) to an open mbox file."""
    text = raw.replace(b"\r\n", b"\n")
    text = FROM_QUOTED.sub(rb">\1", add_status(text, flags))
    out.write(b"From MAILER-DAEMON " + time.asctime(time.gmtime(internaldate)).encode() + b"\n")
    out.write(text)
    if not text.endswith(b"\n"):
        out.write(b"\n")
    out.write(b"\n")


def folder_path(root: Path, name: str) -> Path:
    """Where folder ``name`` lives under an export folder: "Work/Projects" -> Work/Projects.mbox."""
    levels = [level_to_file(level, escape_every_dot=False) for level in name.split("/")]
    return root.joinpath(*levels[:-1], levels[-1] + SUFFIX)


def read_tree(root: Path) -> list[SourceFolder]:
    """Every mbox file under ``root`` (hidden files skipped), named by its path; "inbox" is INBOX."""
    folders = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts) or not is_mbox(path):
            continue
        parts = list(relative.parts)
        if parts[-1].endswith(SUFFIX):
            parts[-1] = parts[-1][:-len(SUFFIX)]
        folders.append(read(path, "/".join(file_to_level(p) for p in parts)))
    return folders
