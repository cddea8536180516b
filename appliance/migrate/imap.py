"""Copying a remote IMAP account (the ISP's or hosted mailbox) into a local user.

Every selectable remote folder is read: the remote Sent, Trash, Junk, Drafts and Archive
(RFC 6154 special use, or the usual names when the server does not say) land in ours,
other names keep their hierarchy with "/" as delimiter. Virtual folders (\\All,
\\Flagged: Gmail's "All Mail", "Starred") are skipped, they only repeat other folders.
Messages keep their flags, keywords and internal date (RFC 3501 §6.4.5 FETCH
FLAGS INTERNALDATE BODY.PEEK[]: reading does not mark them \\Seen remotely).

Resuming: per remote folder, the store remembers UIDVALIDITY and the highest UID below
which everything was copied; a later run fetches only newer UIDs. A message that failed
holds that mark back, so the next run tries it again (content de-duplication skips the
ones already copied after it).
"""

from __future__ import annotations

import imaplib
import logging
import re
import ssl
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from appliance.imap import utf7
from appliance.migrate.importer import FolderImport, Importer, Summary
from appliance.migrate.source import SourceMessage

log = logging.getLogger("kotakpos.migrate")

FETCH_CHUNK = 50                    # messages per FETCH ...
FETCH_BYTES = 32 * 1024 * 1024      # ... and bytes, so big attachments stay within memory bounds
SPECIAL_USES = ("\\Sent", "\\Trash", "\\Junk", "\\Drafts", "\\Archive")
VIRTUAL = ("\\All", "\\Flagged")
# The names servers without RFC 6154 give these folders (Outlook, Apple, Thunderbird, Gmail).
USUAL_NAMES = {
    "sent": "\\Sent", "sent items": "\\Sent", "sent messages": "\\Sent", "sent mail": "\\Sent",
    "trash": "\\Trash", "deleted items": "\\Trash", "deleted messages": "\\Trash", "bin": "\\Trash",
    "junk": "\\Junk", "spam": "\\Junk", "junk e-mail": "\\Junk", "junk email": "\\Junk", "bulk mail": "\\Junk",
    "drafts": "\\Drafts", "draft": "\\Drafts", "archive": "\\Archive", "archives": "\\Archive",
}
LIST_LINE = re.compile(rb'\((?P<attrs>[^)]*)\) (?P<delim>"(?:[^"\\]|\\.)*"|NIL) ?(?P<name>.*)$', re.IGNORECASE)


class RemoteError(Exception):
    """The remote server refused us or went away; the message is fit to show."""


@dataclass(frozen=True)
class Remote:
    host: str
    port: int
    security: str           # "tls" (implicit) | "starttls"
    user: str
    password: str
    cafile: str | None = None
    insecure: bool = False  # do not check the certificate (a test server, a box on the LAN)

    @property
    def source(self) -> str:
        """How the store remembers this account's import progress."""
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class RemoteFolder:
    remote_name: str        # as the server spells it (modified UTF-7), for SELECT
    name: str               # our folder name
    special_use: str | None


def tls_context(remote: Remote) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=remote.cafile)
    if remote.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(remote: Remote, timeout: float = 60.0) -> imaplib.IMAP4:
    try:
        if remote.security == "tls":
            conn = imaplib.IMAP4_SSL(remote.host, remote.port, ssl_context=tls_context(remote), timeout=timeout)
        else:
            conn = imaplib.IMAP4(remote.host, remote.port, timeout=timeout)
            conn.starttls(tls_context(remote))
        conn.login(remote.user, remote.password)
    except (OSError, imaplib.IMAP4.error) as e:
        raise RemoteError(f"cannot log in to {remote.host}:{remote.port}: {e}") from None
    return conn


def _unquote(text: bytes) -> bytes:
    if text.startswith(b'"') and text.endswith(b'"'):
        return re.sub(rb"\\(.)", rb"\1", text[1:-1])
    return text


def parse_list(data: list) -> list[tuple[set[str], str | None, bytes]]:
    """LIST responses from imaplib -> (attributes, delimiter, raw name). A literal name comes as a tuple."""
    result = []
    for item in data:
        if item is None:
            continue
        line, name = (item[0], item[1]) if isinstance(item, tuple) else (item, None)
        match = LIST_LINE.match(line)
        if not match:
            continue
        attrs = {a.decode("ascii", "replace").capitalize() if not a.startswith(b"\\") else
                 "\\" + a[1:].decode("ascii", "replace").capitalize() for a in match["attrs"].split()}
        delim = None if match["delim"].upper() == b"NIL" else _unquote(match["delim"]).decode("ascii", "replace")
        if name is None:
            name = _unquote(match["name"].strip())
        result.append((attrs, delim, name))
    return result


def local_name(raw_name: bytes, delimiter: str | None) -> str:
    try:
        name = utf7.decode(raw_name)
    except utf7.Utf7Error:
        name = raw_name.decode("utf-8", "replace")
    if name.upper() == "INBOX":
        return "INBOX"
    levels = name.split(delimiter) if delimiter else [name]
    return "/".join(level.replace("/", "-") for level in levels if level) or name


def folders(conn: imaplib.IMAP4) -> tuple[list[RemoteFolder], list[str]]:
    """(the folders to copy, the names of virtual ones skipped)."""
    typ, data = conn.list()
    if typ != "OK":
        raise RemoteError("the remote server refused to list its folders")
    chosen, skipped = [], []
    for attrs, delimiter, raw in parse_list(data):
        name = local_name(raw, delimiter)
        if "\\Noselect" in attrs or "\\Nonexistent" in attrs:
            continue
        if attrs & set(VIRTUAL):
            skipped.append(name)
            continue
        special = next((s for s in SPECIAL_USES if s in attrs), None)
        if special is None and name != "INBOX":
            special = USUAL_NAMES.get(name.rsplit("/", 1)[-1].lower())
        chosen.append(RemoteFolder(raw.decode("ascii", "replace"), name, special))
    return chosen, skipped


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fetch_items(data: list) -> Iterator[tuple[bytes, bytes]]:
    """(metadata text, message bytes) of each message in a FETCH answer.

    imaplib gives each message as a tuple (text before the literal, literal) followed by
    the bytes after it; FLAGS and INTERNALDATE may stand on either side.
    """
    for i, item in enumerate(data):
        if isinstance(item, tuple):
            after = data[i + 1] if i + 1 < len(data) and isinstance(data[i + 1], bytes) else b""
            yield item[0] + b" " + after, item[1]


def _parse_meta(meta: bytes) -> tuple[int | None, frozenset[str], float | None]:
    uid = re.search(rb"\bUID (\d+)", meta)
    flags = re.search(rb"\bFLAGS \(([^)]*)\)", meta)
    date = re.search(rb'\bINTERNALDATE ("[^"]+")', meta)
    flag_set = frozenset(f.decode("utf-8", "replace") for f in (flags.group(1).split() if flags else [])
                         if f.lower() != b"\\recent")
    when = None
    if date:
        parsed = imaplib.Internaldate2tuple(b"INTERNALDATE " + date.group(1))
        when = time.mktime(parsed) if parsed else None
    return (int(uid.group(1)) if uid else None), flag_set, when


class ImapImport:
    """One run of ``kotakpos import imap``."""

    def __init__(self, importer: Importer, remote: Remote):
        self.importer = importer
        self.store = importer.store
        self.remote = remote
        self.conn = connect(remote)
        self.skipped_virtual: list[str] = []
        self.unreadable: list[str] = []   # remote folders the server would not open
        self.sizes: dict[str, dict[int, int]] = {}   # remote folder -> UID -> size, from plan()

    def plan(self) -> list[tuple[RemoteFolder, int, list[int]]]:
        """Each remote folder with its UIDVALIDITY and the UIDs still to copy."""
        found, self.skipped_virtual = folders(self.conn)
        done = self.store.imap_import_progress(self.importer.user.id, self.remote.source)
        plan = []
        for folder in found:
            typ, exists = self.conn.select(_quote(folder.remote_name), readonly=True)
            if typ != "OK":
                self.unreadable.append(folder.name)
                continue
            uidvalidity = int(self.conn.response("UIDVALIDITY")[1][0])
            last = done.get(folder.remote_name, (None, 0))
            since = last[1] if last[0] == uidvalidity else 0
            sizes = self._sizes(since) if exists[0] not in (b"0", None) else {}
            self.sizes[folder.remote_name] = sizes
            plan.append((folder, uidvalidity, sorted(sizes)))
        return plan

    def _sizes(self, since: int) -> dict[int, int]:
        """UID -> size of the selected folder's messages above UID ``since``."""
        typ, data = self.conn.uid("FETCH", f"{since + 1}:*", "(UID RFC822.SIZE)")
        sizes = {}
        for item in data if typ == "OK" else []:
            text = item[0] if isinstance(item, tuple) else item
            uid, size = re.search(rb"\bUID (\d+)", text or b""), re.search(rb"\bRFC822\.SIZE (\d+)", text or b"")
            # "n:*" always names the last message, even when its UID is not above n (RFC 3501 §6.4.8).
            if uid and size and int(uid.group(1)) > since:
                sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    def copy_folder(self, folder: RemoteFolder, uidvalidity: int, uids: list[int],
                    progress: Callable[[int], None] = lambda n: None) -> Summary:
        into = FolderImport(self.importer, self.importer.mailbox(folder.name, folder.special_use))
        typ, _ = self.conn.select(_quote(folder.remote_name), readonly=True)
        if typ != "OK":
            raise RemoteError(f"the remote server refused to open {folder.name}")
        held_back = False   # a failure in this folder: the resume mark stays before it
        for chunk in self._chunks(uids, self.sizes.get(folder.remote_name, {})):
            messages, missing = self._fetch(folder, chunk)
            failures = into.add(messages, progress)
            for uid in missing:
                into.summary.failed.append(f"{folder.name} UID {uid}: the remote server did not send it")
                progress(1)
            held_back = held_back or bool(failures or missing)
            if not held_back:
                self.store.set_imap_import_progress(self.importer.user.id, self.remote.source,
                                                    folder.remote_name, uidvalidity, chunk[-1])
        if not uids and not held_back:
            # Nothing new: still note the UIDVALIDITY so a later run does not start over.
            done = self.store.imap_import_progress(self.importer.user.id, self.remote.source)
            if folder.remote_name not in done:
                self.store.set_imap_import_progress(self.importer.user.id, self.remote.source,
                                                    folder.remote_name, uidvalidity, 0)
        return into.summary

    @staticmethod
    def _chunks(uids: list[int], sizes: dict[int, int]):
        """Runs of UIDs to fetch at once: at most FETCH_CHUNK messages or FETCH_BYTES (a big message alone)."""
        chunk, total = [], 0
        for uid in uids:
            if chunk and (len(chunk) >= FETCH_CHUNK or total + sizes.get(uid, 0) > FETCH_BYTES):
                yield chunk
                chunk, total = [], 0
            chunk.append(uid)
            total += sizes.get(uid, 0)
        if chunk:
            yield chunk

    def _fetch(self, folder: RemoteFolder, uids: list[int]) -> tuple[list[SourceMessage], list[int]]:
        """The messages of these UIDs, and the UIDs the server did not send."""
        try:
            typ, data = self.conn.uid("FETCH", ",".join(map(str, uids)), "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        except imaplib.IMAP4.abort as e:
            raise RemoteError(f"the remote server went away while sending {folder.name}: {e}") from None
        except imaplib.IMAP4.error as e:
            log.warning("FETCH of %d messages in %s failed: %s", len(uids), folder.name, e)
            typ, data = "NO", []
        messages, got = [], set()
        for meta, raw in _fetch_items(data if typ == "OK" else []):
            uid, flags, when = _parse_meta(meta)
            if uid is None or uid not in uids or uid in got:
                continue
            got.add(uid)
            messages.append(SourceMessage(raw, flags, when or time.time(), f"{folder.name} UID {uid}"))
        return messages, [u for u in uids if u not in got]

    def close(self) -> None:
        try:
            self.conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass
