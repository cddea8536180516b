"""Maildir folders (the Maildir++ layout Dovecot and Courier use).

The root is INBOX; a subfolder is a directory ".Name" (".Work.Projects" for
Work/Projects) with its own cur/new/tmp. A message is one file whose name ends in
":2,FLAGS" — D draft, F flagged, P passed (forwarded), R replied, S seen, T trashed —
and lowercase letters for keywords, numbered by the folder's ``dovecot-keywords`` file.
The file's modification time is the internal date. Files hold LF line ends.
"""

from __future__ import annotations

import collections
import os
import socket
from pathlib import Path
from typing import Iterator

from appliance.store import content_hash
from appliance.migrate.source import SourceFolder, SourceMessage, file_to_level, level_to_file

LETTERS = {"D": "\\Draft", "F": "\\Flagged", "P": "$Forwarded", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
KEYWORDS_FILE = "dovecot-keywords"


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _keywords(folder: Path) -> dict[str, str]:
    """Letter -> keyword from dovecot-keywords ("0 $Label1" means a is $Label1)."""
    table = {}
    path = folder / KEYWORDS_FILE
    if path.exists():
        for line in path.read_text("utf-8", "replace").splitlines():
            number, _, keyword = line.partition(" ")
            if number.isdigit() and int(number) < 26 and keyword:
                table[chr(ord("a") + int(number))] = keyword
    return table


def parse_flags(file_name: str, keywords: dict[str, str]) -> frozenset[str]:
    _, sep, info = file_name.rpartition(":2,")
    if not sep:
        return frozenset()
    return frozenset(LETTERS[c] if c in LETTERS else keywords[c] for c in info if c in LETTERS or c in keywords)


def read(folder: Path, name: str) -> SourceFolder:
    """One Maildir folder (its cur/ and new/) as the Kotakpos folder ``name``."""
    files = [p for sub in ("cur", "new") for p in (folder / sub).iterdir() if p.is_file() and not p.name.startswith(".")]
    files.sort(key=lambda p: (p.stat().st_mtime, p.name))
    keywords = _keywords(folder)

    def messages() -> Iterator[SourceMessage]:
        for path in files:
            yield SourceMessage(path.read_bytes(), parse_flags(path.name, keywords), path.stat().st_mtime,
                                f"{path.relative_to(folder.parent)}")

    return SourceFolder(name, None, len(files), messages)


def folder_path(root: Path, name: str) -> Path:
    if name == "INBOX":
        return root
    return root / ("." + ".".join(level_to_file(level, escape_every_dot=True) for level in name.split("/")))


def read_tree(root: Path) -> list[SourceFolder]:
    """INBOX (the root) and every ".Sub.Folder" in it that is a Maildir."""
    if root.name.startswith(".") and len(root.name) > 1 and is_maildir(root):  # one subfolder given alone
        return [read(root, "/".join(file_to_level(level) for level in root.name[1:].split(".")))]
    folders = [read(root, "INBOX")] if is_maildir(root) else []
    for path in sorted(root.iterdir()):
        if path.is_dir() and path.name.startswith(".") and len(path.name) > 1 and is_maildir(path):
            folders.append(read(path, "/".join(file_to_level(level) for level in path.name[1:].split("."))))
    return folders


class Writer:
    """Writes one folder's messages, with unique names, through tmp/ as Maildir requires."""

    def __init__(self, folder: Path):
        self.folder = folder
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        self.keywords = {v: k for k, v in _keywords(folder).items()}
        self.host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        self.count = 0

    def contents(self) -> collections.Counter:
        """How many messages of each content (as the store would hash it) the folder holds."""
        return collections.Counter(content_hash(p.read_bytes()) for sub in ("cur", "new")
                                   for p in (self.folder / sub).iterdir() if p.is_file())

    def _letter(self, keyword: str) -> str | None:
        if keyword not in self.keywords:
            if len(self.keywords) == 26:
                return None  # Maildir has 26 keyword letters; Dovecot drops the rest too
            self.keywords[keyword] = chr(ord("a") + len(self.keywords))
            with open(self.folder / KEYWORDS_FILE, "a", encoding="utf-8") as f:
                f.write(f"{len(self.keywords) - 1} {keyword}\n")
        return self.keywords[keyword]

    def write(self, raw: bytes, flags: frozenset[str], internaldate: float, uid: int) -> Path:
        letters = [letter for letter, flag in LETTERS.items() if flag in flags]
        letters += [self._letter(f) for f in sorted(flags) if not f.startswith("\\") and f not in LETTERS.values()]
        info = "".join(sorted(filter(None, letters)))
        self.count += 1
        base = f"{int(internaldate)}.M{self.count}U{uid}P{os.getpid()}.{self.host}"
        tmp = self.folder / "tmp" / base
        tmp.write_bytes(raw.replace(b"\r\n", b"\n"))
        os.utime(tmp, (internaldate, internaldate))
        final = self.folder / "cur" / f"{base}:2,{info}"
        tmp.rename(final)
        return final
