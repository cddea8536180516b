"""Virus scanning: built-in checks that need nothing installed, and clamd when configured.

Built in: the EICAR test file in any MIME part and inside zip archives (nested too);
attachments whose name or content marks them as programs, scripts or macro-enabled
Office files; MIME bombs (nesting deeper or more parts than configured). What is found
is refused at the end of DATA with 554 5.7.0 or quarantined (``mda.virus_action``).
"""

from __future__ import annotations

import io
import logging
import zipfile

from appliance.mda import clamd
from appliance.mda.filter import ACCEPT, Check, Filter, Incoming, Verdict
from appliance.mime import Part
from appliance.mime.sections import UnknownEncoding, transfer_decode

log = logging.getLogger("kotakpos.mda")

# The 68-byte EICAR test file (eicar.org); scanners must find it anywhere in a file.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
REFUSED = (554, "5.7.0", "Message refused: it contains a virus or a forbidden attachment")

# Content that marks a program whatever the file is called.
_MAGIC = ((b"MZ", "Windows program"), (b"\x7fELF", "ELF program"))
MEMBER_LIMIT = 32 * 1024 * 1024  # bytes of one archive member that are looked at
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy Office (Word 97 ...) container


class VirusFilter(Filter):
    name = "virus"

    def __init__(self, ctx):
        cfg = ctx.config.mda
        self.ctx = ctx
        self.blocked = frozenset(e.lower().lstrip(".") for e in cfg.blocked_extensions)
        self.max_depth = cfg.max_mime_depth
        self.max_parts = cfg.max_mime_parts
        self.max_members = cfg.max_zip_members
        self.quarantine = cfg.virus_action == "quarantine"
        self.clamd = clamd.Client(cfg.clamd, cfg.clamd_timeout) if cfg.clamd else None
        self.runs_locally = self.clamd is None  # the built-in checks wait on nothing

    def check(self, msg: Incoming) -> Check:
        return VirusCheck(self, msg)


class VirusCheck(Check):
    def __init__(self, f: VirusFilter, msg: Incoming):
        super().__init__(msg)
        self.f = f

    def check_body(self) -> Verdict:
        found = self.scan()
        if found is None and self.f.clamd is not None:
            found = self.clamd_scan()
        if found is None:
            return ACCEPT
        self.f.ctx.count("mda.virus")
        if self.f.quarantine:
            return Verdict(quarantine=True, reason=found)
        return Verdict(reject=REFUSED, reason=found)

    def clamd_scan(self) -> str | None:
        try:
            name = self.f.clamd.scan(self.msg.raw)
        except clamd.ClamdError as e:
            # Fail open: a broken scanner must not stop the mail; the built-in checks ran.
            self.f.ctx.count("mda.clamd_error")
            log.error("clamd scan of %s failed: %s", self.msg.envelope.message_id, e)
            return None
        return f"clamd: {name}" if name else None

    def scan(self) -> str | None:
        """What the built-in checks find (a reason), or None."""
        raw = self.msg.raw
        count = 0
        stack: list[tuple[Part, int]] = [(self.msg.info.root, 0)]
        while stack:
            part, depth = stack.pop()
            count += 1
            if depth > self.f.max_depth or count > self.f.max_parts or part.opaque:
                return f"MIME bomb: more than {self.f.max_depth} levels or {self.f.max_parts} parts"
            if part.children:
                stack.extend((child, depth + 1) for child in part.children)
                continue
            if part.message is not None:
                stack.append((part.message, depth + 1))
                continue
            try:
                content = transfer_decode(raw[part.body_start:part.body_end], part.encoding)
            except UnknownEncoding:
                content = raw[part.body_start:part.body_end]
            found = self.look_at(part.filename or "", content, 0, [0])
            if found:
                return found
        return None

    def look_at(self, name: str, content: bytes, depth: int, members: list[int]) -> str | None:
        """One file: by name, by content, and into it when it is a zip archive."""
        if EICAR in content:
            return f"EICAR test file{' in ' + name if name else ''}"
        extension = name.rpartition(".")[2].lower() if "." in name else ""
        if extension in self.f.blocked:
            return f"blocked attachment type .{extension} ({name})"
        for magic, what in _MAGIC:
            if content.startswith(magic) and name:
                return f"{what} attached as {name}"
        if content.startswith(_OLE) and (b"_VBA_PROJECT" in content or b"V\x00B\x00A\x00" in content):
            return f"Office document with macros ({name or 'unnamed'})"
        if content.startswith(b"PK\x03\x04") and depth < 4:
            return self.look_into_zip(name, content, depth, members)
        return None

    def look_into_zip(self, name: str, content: bytes, depth: int, members: list[int]) -> str | None:
        try:
            archive = zipfile.ZipFile(io.BytesIO(content))
            infos = archive.infolist()
        except (zipfile.BadZipFile, ValueError, OSError):
            return None  # not a readable zip: judged by name and content alone
        names = {i.filename for i in infos}
        if "word/vbaProject.bin" in names or "xl/vbaProject.bin" in names or "ppt/vbaProject.bin" in names:
            return f"Office document with macros ({name or 'unnamed'})"
        if "META-INF/MANIFEST.MF" in names and any(n.endswith(".class") for n in names):
            return f"Java archive ({name or 'unnamed'})"
        for info in infos:
            members[0] += 1
            if members[0] > self.f.max_members:
                return None
            if info.is_dir():
                continue
            try:
                with archive.open(info) as member:
                    data = member.read(MEMBER_LIMIT)  # a zip bomb expands no further than this
            except (zipfile.BadZipFile, RuntimeError, ValueError, OSError, NotImplementedError):
                continue  # encrypted or damaged member: nothing to look at
            found = self.look_at(info.filename, data, depth + 1, members)
            if found:
                return f"{found} inside {name or 'a zip archive'}"
        return None
