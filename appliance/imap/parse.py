"""IMAP command parser: complete command bytes (literals inlined) → command object.

``parse_command`` is the entry point. The ``Cursor`` below is the tokenizer: one
method per production of RFC 3501 §9 / RFC 9051 §9, each citing its rule.
A literal appears in the input exactly as the client sent it (``{n}`` CRLF then
n octets); ``reader.py`` has already checked sizes and sent continuations.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from appliance.imap import utf7
from appliance.imap.errors import CommandSyntaxError, UserError

MAX_NZ = 2**32 - 1  # RFC 3501 §9: nz-number fits 32 bits
MAX_MODSEQ = 2**63 - 1  # RFC 7162 §7: mod-sequence-value
MAX_DEPTH = 16  # parenthesis nesting; real clients stay below 5

# RFC 3501 §9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
# quoted-specials / resp-specials
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x00, 0x20)) | {0x7F}
_ATOM_CHARS = frozenset(range(0x01, 0x80)) - _ATOM_SPECIALS
_ASTRING_CHARS = _ATOM_CHARS | {ord("]")}
_LIST_CHARS = _ATOM_CHARS | {ord("%"), ord("*"), ord("]")}
_UTF8_BYTES = frozenset(range(0x80, 0x100))
_TAG_CHARS = _ASTRING_CHARS - {ord("+")}
_LITERAL = re.compile(rb"~?\{(\d{1,20})(\+?)\}\r?\n")
SYSTEM_FLAGS = {f.lower(): f for f in
                ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")}
_DATE = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
_DATE_TIME = re.compile(rb'"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class SequenceSet:
    """RFC 3501 §9 sequence-set. ``None`` stands for "*" (the largest number in use).

    Ranges are kept as written ("7:3" stays (7, 3)); ``resolve`` orders them.
    ``saved`` is "$", the result saved by SEARCH RETURN (SAVE) (RFC 5182 §2.1),
    which the session resolves; it has no ranges.
    """

    ranges: tuple[tuple[int | None, int | None], ...]
    saved: bool = False

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Ranges as ordered (low, high) pairs with "*" replaced by ``largest``.

        RFC 3501 §6.4.8: for a UID range "n:*" the largest UID in use is always
        included even when n is larger, which this falls out of naturally.
        """
        out = []
        for first, last in self.ranges:
            a = largest if first is None else first
            b = largest if last is None else last
            out.append((min(a, b), max(a, b)))
        return out

    def contains(self, number: int, largest: int) -> bool:
        return any(lo <= number <= hi for lo, hi in self.resolve(largest))

    def __str__(self) -> str:
        def one(n: int | None) -> str:
            return "*" if n is None else str(n)

        if self.saved:
            return "$"
        return ",".join(one(a) if a == b else f"{one(a)}:{one(b)}" for a, b in self.ranges)


SAVED_RESULT = SequenceSet((), saved=True)


class Cursor:
    """A position in one command's bytes, with a method per grammar rule."""

    def __init__(self, data: bytes, utf8_names: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.depth = 0
        self.utf8_names = utf8_names  # ENABLE UTF8=ACCEPT: mailbox names are UTF-8, not modified UTF-7

    # -- low level --------------------------------------------------------
    def error(self, reason: str) -> CommandSyntaxError:
        return CommandSyntaxError(reason)

    def peek(self, n: int = 1) -> bytes:
        return self.data[self.pos:self.pos + n]

    def at_end(self) -> bool:
        """True at the CRLF (or bare LF) that ends the command."""
        return self.data[self.pos:] in (b"\r\n", b"\n", b"")

    def end(self) -> None:
        if not self.at_end():
            raise self.error("unexpected text after command")
        self.pos = len(self.data)

    def sp(self) -> None:
        if self.peek() != b" ":
            raise self.error("expected a space")
        self.pos += 1

    def maybe(self, literal: bytes) -> bool:
        """Consume ``literal`` (case-insensitive) if it comes next."""
        if self.data[self.pos:self.pos + len(literal)].upper() == literal.upper():
            self.pos += len(literal)
            return True
        return False

    def expect(self, literal: bytes) -> None:
        if not self.maybe(literal):
            raise self.error(f"expected {literal.decode()}")

    def _run(self, allowed: frozenset[int]) -> bytes:
        start = self.pos
        data = self.data
        while self.pos < len(data) and data[self.pos] in allowed:
            self.pos += 1
        return data[start:self.pos]

    # -- RFC 3501 §9 rules ------------------------------------------------
    def tag(self) -> bytes:
        # tag = 1*<any ASTRING-CHAR except "+">
        tag = self._run(_TAG_CHARS)
        if not tag:
            raise self.error("missing tag")
        return tag

    def atom(self) -> bytes:
        # atom = 1*ATOM-CHAR
        atom = self._run(_ATOM_CHARS)
        if not atom:
            raise self.error("expected an atom")
        return atom

    def keyword(self) -> str:
        """An atom read as an upper-case ASCII word (verbs, keys, options)."""
        return self.atom().decode("ascii").upper()

    def quoted(self) -> bytes:
        # quoted = DQUOTE *QUOTED-CHAR DQUOTE; QUOTED-CHAR excludes CR and LF
        self.expect(b'"')
        out = bytearray()
        data = self.data
        while True:
            if self.pos >= len(data):
                raise self.error("unterminated quoted string")
            byte = data[self.pos]
            self.pos += 1
            if byte == 0x22:
                return bytes(out)
            if byte == 0x5C:
                if self.pos >= len(data) or data[self.pos] not in b'"\\':
                    raise self.error("bad escape in quoted string")
                byte = data[self.pos]
                self.pos += 1
            elif byte in (0x0D, 0x0A, 0x00):
                raise self.error("CR, LF or NUL in quoted string")
            out.append(byte)

    def literal(self, allow_binary: bool = False) -> bytes:
        # literal = "{" number ["+"] "}" CRLF *CHAR8 (RFC 7888 adds "+";
        # RFC 3516 literal8 "~{" for APPEND of binary content)
        match = _LITERAL.match(self.data, self.pos)
        if not match or (match.group(0).startswith(b"~") and not allow_binary):
            raise self.error("bad literal")
        size = int(match.group(1))
        start = match.end()
        if start + size > len(self.data):
            raise self.error("literal shorter than announced")
        body = self.data[start:start + size]
        if not allow_binary and b"\x00" in body:
            raise self.error("NUL in literal")
        self.pos = start + size
        return body

    def string(self) -> bytes:
        # string = quoted / literal
        first = self.peek()
        if first == b'"':
            return self.quoted()
        if first == b"{":
            return self.literal()
        raise self.error("expected a string")

    def astring(self) -> bytes:
        # astring = 1*ASTRING-CHAR / string
        if self.peek() in (b'"', b"{"):
            return self.string()
        value = self._run(_ASTRING_CHARS)
        if not value:
            raise self.error("expected an atom or string")
        return value

    def nstring(self) -> bytes | None:
        if self.maybe(b"NIL"):
            return None
        return self.string()

    def number(self, maximum: int = MAX_NZ) -> int:
        # number = 1*DIGIT; unsigned 32 bits (64 for mod-sequence-value)
        digits = self._run(frozenset(b"0123456789"))
        if not digits:
            raise self.error("expected a number")
        if len(digits) > 20 or int(digits) > maximum:
            raise self.error("number out of range")
        return int(digits)

    def nz_number(self, maximum: int = MAX_NZ) -> int:
        value = self.number(maximum)
        if value == 0:
            raise self.error("zero is not allowed here")
        return value

    def seq_number(self) -> int | None:
        # seq-number = nz-number / "*"
        if self.maybe(b"*"):
            return None
        return self.nz_number()

    def sequence_set(self) -> SequenceSet:
        # sequence-set = (seq-number / seq-range) ["," sequence-set]
        # sequence-set =/ seq-last-command; seq-last-command = "$" (RFC 5182 §4)
        if self.maybe(b"$"):
            return SAVED_RESULT
        ranges = []
        while True:
            first = self.seq_number()
            last = self.seq_number() if self.maybe(b":") else first
            ranges.append((first, last))
            if not self.maybe(b","):
                return SequenceSet(tuple(ranges))

    def enter(self) -> None:
        """One level deeper (a parenthesis, or SEARCH's OR/NOT); bounded by MAX_DEPTH."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("too deeply nested")

    def open_paren(self) -> None:
        self.expect(b"(")
        self.enter()

    def close_paren(self) -> bool:
        if self.maybe(b")"):
            self.depth -= 1
            return True
        return False

    def paren_list(self, item, allow_empty: bool = True) -> list:
        """ "(" [item *(SP item)] ")" — calls ``item()`` for each element."""
        self.open_paren()
        out = []
        if self.close_paren():
            if not allow_empty:
                raise self.error("empty list")
            return out
        while True:
            out.append(item())
            if self.close_paren():
                return out
            self.sp()

    def options(self, allowed: dict, what: str, allow_empty: bool = True) -> dict[str, object]:
        """ "(" [option *(SP option)] ")" of named options, each a keyword, some followed by
        SP and an argument: the shape of LIST's selection and return options (RFC 5258),
        SEARCH's and SORT's RETURN (RFC 4731, RFC 5267) and the FETCH and STORE modifiers
        (RFC 4466 §2.4). ``allowed`` maps each name to the reader of its argument, or None;
        the answer maps each given name to its argument (True when it takes none)."""
        found: dict[str, object] = {}

        def option():
            name = self.keyword()
            if name not in allowed:
                raise self.error(f"unknown {what} {name}")
            read = allowed[name]
            if read is not None:
                self.sp()
            found[name] = True if read is None else read()

        self.paren_list(option, allow_empty)
        return found

    def flag(self) -> str:
        # flag = "\Answered" / ... / flag-keyword / flag-extension; returned as
        # written, system flags normalised to their canonical case
        if self.maybe(b"\\"):
            if self.maybe(b"*"):
                return "\\*"
            name = "\\" + self.atom().decode("ascii")
            return SYSTEM_FLAGS.get(name.lower(), name)
        return self.atom().decode("ascii")

    def flag_list(self) -> list[str]:
        # flag-list = "(" [flag *(SP flag)] ")"
        return self.paren_list(self.flag)

    def store_flags(self) -> list[str]:
        # STORE accepts a flag-list or bare flags separated by SP (RFC 3501 §9)
        if self.peek() == b"(":
            return self.flag_list()
        flags = [self.flag()]
        while self.peek() == b" ":
            self.sp()
            flags.append(self.flag())
        return flags

    def date(self) -> dt.date:
        # date = date-text / DQUOTE date-text DQUOTE; date-text = date-day "-" date-month "-" date-year
        quoted = self.maybe(b'"')
        match = _DATE.match(self.data, self.pos)
        if not match:
            raise self.error("bad date")
        self.pos = match.end()
        if quoted:
            self.expect(b'"')
        try:
            month = [m.upper() for m in _MONTHS].index(match.group(2).decode().upper()) + 1
            return dt.date(int(match.group(3)), month, int(match.group(1)))
        except ValueError as exc:
            raise self.error("bad date") from exc

    def date_time(self) -> dt.datetime:
        # date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
        match = _DATE_TIME.match(self.data, self.pos)
        if not match:
            raise self.error("bad date-time")
        self.pos = match.end()
        day, mon, year, hh, mm, ss, sign, zh, zm = (g.decode() for g in match.groups())
        try:
            month = [m.upper() for m in _MONTHS].index(mon.upper()) + 1
            offset = dt.timedelta(hours=int(zh), minutes=int(zm)) * (-1 if sign == "-" else 1)
            return dt.datetime(int(year), month, int(day), int(hh), int(mm), int(ss),
                               tzinfo=dt.timezone(offset))
        except ValueError as exc:
            raise self.error("bad date-time") from exc

    def mailbox(self) -> str:
        # mailbox = "INBOX" / astring; modified UTF-7 (RFC 3501 §5.1.3) or UTF-8 (RFC 9755);
        # INBOX is case-insensitive, so any spelling is normalised here
        return _mailbox_name(_decode_name(self._name(_ASTRING_CHARS), self.utf8_names))

    def list_mailbox(self) -> str:
        # list-mailbox = 1*list-char / string
        return _decode_name(self._name(_LIST_CHARS), self.utf8_names)

    def _name(self, chars: frozenset[int]) -> bytes:
        """A mailbox name or pattern: a string, or an atom of ``chars``. After ENABLE
        UTF8=ACCEPT the atom may hold UTF-8 too, as clients such as imaplib send it."""
        if self.peek() in (b'"', b"{"):
            return self.string()
        raw = self._run(chars | _UTF8_BYTES if self.utf8_names else chars)
        if not raw:
            raise self.error("expected a mailbox name")
        return raw


def _decode_name(raw: bytes, utf8: bool) -> str:
    if utf8:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:  # RFC 9755 §3: the grammar itself asks for UTF-8
            raise CommandSyntaxError("mailbox name is not valid UTF-8") from exc
    # any astring is a mailbox by the grammar: one that is not modified UTF-7 names a
    # mailbox that cannot exist, answered NO (as Dovecot does), not a syntax error
    try:
        return utf7.decode(raw)
    except utf7.Utf7Error as exc:
        raise UserError("Mailbox name is not valid modified UTF-7") from exc


def _mailbox_name(name: str) -> str:
    if name.upper() == "INBOX":
        return "INBOX"
    if name.upper().startswith("INBOX/"):
        return "INBOX" + name[5:]
    return name


@dataclass(frozen=True)
class InvalidCommand:
    """A command that could not be parsed; the session answers it BAD (pymap style).

    ``verb`` is set when the verb was read, so the session can still apply its
    state gate; ``unknown`` says the verb itself is not one we know; ``refused``
    says the grammar was kept but an argument names nothing that can exist (a
    mailbox name that does not decode): answered NO.
    """

    tag: bytes | None
    verb: str | None
    reason: str
    unknown: bool = False
    refused: bool = False


def split_tag(data: bytes) -> bytes | None:
    """The tag of a command line, or None when it has none we could answer with."""
    cursor = Cursor(data)
    try:
        tag = cursor.tag()
        cursor.sp()
    except CommandSyntaxError:
        return None
    return tag


def parse_command(data: bytes, utf8_names: bool = False):
    """Parse one complete command (CRLF-terminated, literals inlined).

    Returns a command object from ``commands`` or ``InvalidCommand``. ``utf8_names``:
    the session ENABLEd UTF8=ACCEPT.
    """
    from appliance.imap.commands import COMMANDS  # late: the command modules import this tokenizer

    cursor = Cursor(data, utf8_names)
    try:
        tag = cursor.tag()
        cursor.sp()
    except CommandSyntaxError as exc:
        return InvalidCommand(split_tag(data), None, exc.text)
    verb = None
    try:
        verb = cursor.keyword()
        if verb == "UID":
            cursor.sp()
            verb = "UID " + cursor.keyword()
        cls = COMMANDS.get(verb)
        if cls is None:
            return InvalidCommand(tag, verb, "unknown command", unknown=True)
        command = cls.parse(tag, cursor)
        cursor.end()
        return command
    except CommandSyntaxError as exc:
        return InvalidCommand(tag, verb, exc.text)
    except UserError as exc:
        return InvalidCommand(tag, verb, exc.text, refused=True)
