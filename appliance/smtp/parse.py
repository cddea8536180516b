"""SMTP command lines → command objects. No sockets, no store.

``parse_command(line)`` takes one command line (with or without its CRLF) and
returns a command object. It never raises: a malformed command comes back as
``InvalidCommand`` carrying the reply, and the session answers it like any other
command after its state gate (so "MAIL garbage" before EHLO still gets 503).

Arguments are decoded as UTF-8 with ``surrogateescape`` (RFC 6531 allows UTF-8 in
addresses; the escape keeps undecodable bytes intact so they can be refused as
such instead of being silently replaced).

Addresses keep every detail an open-relay trick could hide in (source route,
quoting, IP literal, trailing dot): ``Path.relay_tricks`` names them so the policy
can refuse them before anything routes on the address.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import ClassVar

from appliance.smtp import replies as R
from appliance.smtp.errors import CommandSyntaxError
from appliance.smtp.replies import Reply

# RFC 5321 §4.5.3.1.1-3 size limits
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256
# RFC 3461 §4.4 and §4.2
MAX_ENVID = 100
MAX_ORCPT = 500

# RFC 5322 §3.2.3 atext (printable ASCII specials); RFC 6531 §3.3 adds UTF8-non-ascii
_ATEXT_SPECIALS = frozenset("!#$%&'*+-/=?^_`{|}~")
# RFC 5321 §4.1.2 (grammar: esmtp-keyword)
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
# RFC 5321 §4.1.2 (grammar: Let-dig, Ldh-str)
_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")
_AUTH_MECHANISM = re.compile(r"[A-Z0-9_-]{1,20}\Z")
_GENERAL_LITERAL_TAG = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]\Z")
# Fast paths for the forms nearly every command uses, decided by one regex match; anything
# else (UTF-8, literals, quoting) takes the character-by-character checks below.
# RFC 5321 §4.1.2 (grammar: Dot-string) in ASCII
_ASCII_DOT_STRING = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
# RFC 5321 §4.1.2 (grammar: Domain = sub-domain *("." sub-domain)) in ASCII
_ASCII_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*"
                           r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")
# NUL, bare CR and other controls never belong in a command line
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


# --- addresses -------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """A parsed RFC 5321 §4.1.2 Path, details kept for the relay policy."""

    local: str  # local part, unquoted when the quoted form was a plain dot-string
    domain: str  # domain or "[literal]" as written (case kept); "" only for <postmaster>
    source_route: tuple[str, ...] = ()  # "@a,@b:" hops, ignored for delivery (RFC 5321 §C)
    quoted: bool = False  # local part needed quotes (contains specials or spaces)
    ip_literal: bool = False  # domain is an address literal such as [192.0.2.1]

    @property
    def address(self) -> str:
        """The address used for lookup: local part as given, domain in lower case."""
        if not self.domain:
            return self.local
        local = f'"{_quote(self.local)}"' if self.quoted else self.local
        return f"{local}@{self.domain.lower()}"

    @property
    def is_utf8(self) -> bool:
        """Non-ASCII anywhere: needs SMTPUTF8 (RFC 6531 §3.4)."""
        return not (self.local + self.domain).isascii()

    @property
    def relay_tricks(self) -> frozenset[str]:
        """Address forms that could make a local domain route mail elsewhere.

        A relay policy refuses these from unauthenticated clients rather than
        trusting that every later hop interprets them the same way we do.
        """
        tricks = set()
        if self.source_route:
            tricks.add("source-route")
        if "%" in self.local:
            tricks.add("percent-hack")
        if "!" in self.local:
            tricks.add("bang-path")
        if self.quoted and any(c in self.local for c in "@%!"):
            tricks.add("quoted-local-part")
        if self.ip_literal:
            tricks.add("ip-literal")
        if self.domain.endswith("."):
            tricks.add("trailing-dot")
        return frozenset(tricks)


def _quote(local: str) -> str:
    return local.replace("\\", "\\\\").replace('"', '\\"')


def _is_atext(c: str) -> bool:
    if c.isascii():
        return c.isalnum() or c in _ATEXT_SPECIALS
    # UTF8-non-ascii (RFC 6531); a surrogate is an undecodable byte, never valid
    return not ("\ud800" <= c <= "\udfff") and c.isprintable()


def _is_dot_string(s: str) -> bool:
    # RFC 5321 §4.1.2 (grammar: Dot-string = Atom *("." Atom))
    if _ASCII_DOT_STRING.match(s):
        return True
    return bool(s) and not s.isascii() and all(atom and all(_is_atext(c) for c in atom) for atom in s.split("."))


def _valid_domain(d: str, *, allow_trailing_dot: bool) -> bool:
    # RFC 5321 §4.1.2 (grammar: Domain); U-labels allowed by RFC 6531 §3.3
    if allow_trailing_dot and d.endswith(".") and not d.endswith(".."):
        d = d[:-1]
    if not d or len(d) > MAX_DOMAIN:
        return False
    if d.isascii():
        return _ASCII_DOMAIN.match(d) is not None
    for label in d.split("."):
        if label.isascii():
            if not _LDH_LABEL.match(label):
                return False
        elif not label or any("\ud800" <= c <= "\udfff" or not c.isprintable() or c in " @[]\\\"" for c in label):
            return False
    return True


def _valid_address_literal(lit: str) -> bool:
    # RFC 5321 §4.1.3 (grammar: address-literal)
    inner = lit[1:-1]
    if inner[:5].upper() == "IPV6:":
        try:
            ipaddress.IPv6Address(inner[5:])
            return True
        except ValueError:
            return False
    tag, colon, content = inner.partition(":")
    if colon:  # General-address-literal: tag ":" dcontent
        return bool(_GENERAL_LITERAL_TAG.match(tag)) and bool(content) and all(
            33 <= ord(c) <= 126 and c not in "[]\\" for c in content
        )
    try:
        ipaddress.IPv4Address(inner)
        return True
    except ValueError:
        return False


def _split_path(s: str) -> tuple[str, str]:
    """Return (text inside <>, rest after >); a '>' inside quotes does not close."""
    if not s.startswith("<"):
        raise ValueError("no <")
    in_quotes = escaped = False
    for i in range(1, len(s)):
        c = s[i]
        if escaped:
            escaped = False
        elif c == "\\" and in_quotes:
            escaped = True
        elif c == '"':
            in_quotes = not in_quotes
        elif c == ">" and not in_quotes:
            return s[1:i], s[i + 1 :]
    raise ValueError("no >")


def parse_mailbox(text: str, *, allow_source_route: bool = True) -> Path:
    """Parse the inside of ``<...>`` (without the brackets). Raises ValueError.

    RFC 5321 §4.1.2 (grammar: Path, A-d-l, Mailbox, Local-part, Quoted-string).
    """
    if len(text) > MAX_PATH:
        raise ValueError("path too long")
    route: tuple[str, ...] = ()
    if text.startswith("@"):
        if not allow_source_route:
            raise ValueError("source route")
        adl, colon, text = text.partition(":")
        if not colon:
            raise ValueError("source route without ':'")
        hops = adl.split(",")
        if not all(h.startswith("@") and _valid_domain(h[1:], allow_trailing_dot=False) for h in hops):
            raise ValueError("bad source route")
        route = tuple(h[1:] for h in hops)

    quoted = False
    if text.startswith('"'):
        local_chars = []
        i = 1
        while True:
            if i >= len(text):
                raise ValueError("unterminated quoted string")
            c = text[i]
            if c == '"':
                break
            if c == "\\":
                # quoted-pairSMTP = %d92 %d32-126
                if i + 1 >= len(text) or not 32 <= ord(text[i + 1]) <= 126:
                    raise ValueError("bad quoted pair")
                local_chars.append(text[i + 1])
                i += 2
                continue
            # qtextSMTP = %d32-33 / %d35-91 / %d93-126, plus UTF8-non-ascii
            if c.isascii() and not 32 <= ord(c) <= 126 or "\ud800" <= c <= "\udfff":
                raise ValueError("bad character in quoted string")
            local_chars.append(c)
            i += 1
        local = "".join(local_chars)
        rest = text[i + 1 :]
        if not rest.startswith("@"):
            raise ValueError("no domain after quoted local part")
        domain = rest[1:]
        # RFC 5321 §4.1.2: "abc"@x and abc@x are the same mailbox
        quoted = not _is_dot_string(local)
    else:
        local, at, domain = text.partition("@")
        if not at:
            if not route and local.lower() == "postmaster":
                return Path(local, "")  # RFC 5321 §4.1.1.3: <Postmaster> without domain
            raise ValueError("no @")
        if not _is_dot_string(local):
            raise ValueError("bad local part")
    if not local or len(local.encode("utf-8", "surrogateescape")) > MAX_LOCAL_PART:
        raise ValueError("bad local part length")

    if domain.startswith("[") and domain.endswith("]"):
        if not _valid_address_literal(domain):
            raise ValueError("bad address literal")
        return Path(local, domain, route, quoted, ip_literal=True)
    if not _valid_domain(domain, allow_trailing_dot=True):
        raise ValueError("bad domain")
    return Path(local, domain, route, quoted)


# --- ESMTP parameters --------------------------------------------------------


def xtext_decode(value: str) -> str:
    """RFC 3461 §4 (grammar: xtext): "+" and two upper-case hex digits."""
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "+":
            hexpair = value[i + 1 : i + 3]
            if len(hexpair) != 2 or any(h not in "0123456789ABCDEF" for h in hexpair):
                raise ValueError("bad xtext escape")
            out.append(chr(int(hexpair, 16)))
            i += 3
            continue
        if not 33 <= ord(c) <= 126 or c == "=":
            raise ValueError("bad xtext character")
        out.append(c)
        i += 1
    return "".join(out)


_UTF8_ADDR_ESCAPE = re.compile(r"\\x\{([0-9A-F]{2,6})\}")


def _orcpt_decode(value: str) -> tuple[str, str]:
    # RFC 3461 §4.2: ORCPT=addr-type ";" xtext; RFC 6533 §3 adds \x{HEX} for utf-8
    addr_type, semi, encoded = value.partition(";")
    if not semi or not addr_type or not encoded or len(value) > MAX_ORCPT:
        raise ValueError("bad ORCPT")
    address = xtext_decode(encoded)
    if addr_type.lower() == "utf-8":
        address = _UTF8_ADDR_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), address)
    return addr_type.lower(), address


def _split_params(text: str) -> dict[str, str | None]:
    """RFC 5321 §4.1.2 (grammar: Mail-parameters, esmtp-param). Keys upper-cased."""
    params: dict[str, str | None] = {}
    for item in text.split():
        key, eq, value = item.partition("=")
        if not _KEYWORD.match(key):
            raise CommandSyntaxError(R.R501_BAD_PARAMETER, f"bad parameter keyword {key!r}")
        # split() left no white space: printable ASCII is then exactly %d33-126
        if eq and (not value or not (value.isascii() and value.isprintable()) and any(("\ud800" <= c <= "\udfff") or (c.isascii() and not 33 <= ord(c) <= 126) for c in value)):
            raise CommandSyntaxError(R.R501_BAD_PARAMETER, f"bad value for {key}")
        key = key.upper()
        if key in params:
            raise CommandSyntaxError(R.R501_DUPLICATE_PARAMETER, f"{key} twice")
        params[key] = value if eq else None
    return params


@dataclass(frozen=True)
class MailParams:
    """MAIL FROM parameters the server implements."""

    size: int | None = None  # SIZE= declared size (RFC 1870); checked against the limit
    body: str = "7BIT"  # BODY= 7BIT, 8BITMIME (RFC 6152) or BINARYMIME (RFC 3030)
    smtputf8: bool = False  # SMTPUTF8 (RFC 6531): UTF-8 addresses and headers allowed
    ret: str | None = None  # RET= FULL or HDRS (RFC 3461), kept for DSNs
    envid: str | None = None  # ENVID= decoded xtext (RFC 3461), kept for DSNs
    auth: str | None = None  # AUTH= decoded xtext (RFC 4954 §5), "<>" for unknown


@dataclass(frozen=True)
class RcptParams:
    """RCPT TO parameters (RFC 3461 DSN)."""

    notify: frozenset[str] | None = None  # NOTIFY= {NEVER} or subset of SUCCESS/FAILURE/DELAY
    orcpt: tuple[str, str] | None = None  # ORCPT= (addr-type, decoded original recipient)


NO_MAIL_PARAMS = MailParams()  # shared: the objects are frozen
NO_RCPT_PARAMS = RcptParams()


def _value(params: dict[str, str | None], key: str) -> str:
    value = params[key]
    if value is None:
        raise CommandSyntaxError(R.R501_BAD_PARAMETER, f"{key} needs a value")
    return value


def parse_mail_params(text: str) -> MailParams:
    if not text:
        return NO_MAIL_PARAMS
    params = _split_params(text)
    unknown = set(params) - {"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"}
    if unknown:
        raise CommandSyntaxError(R.R555_UNKNOWN_PARAMETER, f"unknown MAIL parameters {sorted(unknown)}")
    values: dict = {}
    try:
        if "SIZE" in params:
            size = _value(params, "SIZE")
            if not (size.isdigit() and size.isascii() and len(size) <= 20):
                raise ValueError("SIZE")
            values["size"] = int(size)
        if "BODY" in params:
            body = _value(params, "BODY").upper()
            if body not in ("7BIT", "8BITMIME", "BINARYMIME"):
                raise ValueError("BODY")
            values["body"] = body
        if "SMTPUTF8" in params:
            if params["SMTPUTF8"] is not None:
                raise ValueError("SMTPUTF8 takes no value")
            values["smtputf8"] = True
        if "RET" in params:
            ret = _value(params, "RET").upper()
            if ret not in ("FULL", "HDRS"):
                raise ValueError("RET")
            values["ret"] = ret
        if "ENVID" in params:
            envid = xtext_decode(_value(params, "ENVID"))
            if len(envid) > MAX_ENVID:
                raise ValueError("ENVID too long")
            values["envid"] = envid
        if "AUTH" in params:
            values["auth"] = xtext_decode(_value(params, "AUTH"))
    except ValueError as e:
        raise CommandSyntaxError(R.R501_BAD_PARAMETER, str(e)) from None
    return MailParams(**values)


def parse_rcpt_params(text: str) -> RcptParams:
    if not text:
        return NO_RCPT_PARAMS
    params = _split_params(text)
    unknown = set(params) - {"NOTIFY", "ORCPT"}
    if unknown:
        raise CommandSyntaxError(R.R555_UNKNOWN_PARAMETER, f"unknown RCPT parameters {sorted(unknown)}")
    values: dict = {}
    try:
        if "NOTIFY" in params:
            # RFC 3461 §4.1: "NEVER" alone, or a list of SUCCESS, FAILURE, DELAY
            notify = frozenset(_value(params, "NOTIFY").upper().split(","))
            if not notify or not (notify == {"NEVER"} or notify <= {"SUCCESS", "FAILURE", "DELAY"}):
                raise ValueError("NOTIFY")
            values["notify"] = notify
        if "ORCPT" in params:
            values["orcpt"] = _orcpt_decode(_value(params, "ORCPT"))
    except ValueError as e:
        raise CommandSyntaxError(R.R501_BAD_PARAMETER, str(e)) from None
    return RcptParams(**values)


# --- commands ----------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """Base of all commands. Each has ``verb``, the wire verb the session dispatches on."""


@dataclass(frozen=True)
class Ehlo(Command):
    verb: ClassVar[str] = "EHLO"
    name: str  # the client's claimed hostname, for the Received header


@dataclass(frozen=True)
class Helo(Command):
    verb: ClassVar[str] = "HELO"
    name: str


@dataclass(frozen=True)
class Mail(Command):
    verb: ClassVar[str] = "MAIL"
    path: Path | None  # None is the null reverse-path <> (bounces)
    params: MailParams = field(default_factory=MailParams)
    has_params: bool = False  # any parameter given: illegal after HELO (RFC 5321 §4.1.1.11)


@dataclass(frozen=True)
class Rcpt(Command):
    verb: ClassVar[str] = "RCPT"
    path: Path
    params: RcptParams = field(default_factory=RcptParams)
    has_params: bool = False


@dataclass(frozen=True)
class Data(Command):
    verb: ClassVar[str] = "DATA"


@dataclass(frozen=True)
class Bdat(Command):
    verb: ClassVar[str] = "BDAT"
    size: int  # octets of chunk data that follow the command line
    last: bool  # LAST: this chunk ends the message (RFC 3030 §2)


@dataclass(frozen=True)
class Rset(Command):
    verb: ClassVar[str] = "RSET"


@dataclass(frozen=True)
class Noop(Command):
    verb: ClassVar[str] = "NOOP"


@dataclass(frozen=True)
class Quit(Command):
    verb: ClassVar[str] = "QUIT"


@dataclass(frozen=True)
class Help(Command):
    verb: ClassVar[str] = "HELP"
    topic: str  # "" for general help


@dataclass(frozen=True)
class Vrfy(Command):
    verb: ClassVar[str] = "VRFY"
    argument: str


@dataclass(frozen=True)
class Expn(Command):
    verb: ClassVar[str] = "EXPN"
    argument: str


@dataclass(frozen=True)
class Starttls(Command):
    verb: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True)
class Auth(Command):
    verb: ClassVar[str] = "AUTH"
    mechanism: str  # upper case
    initial: str | None  # initial response as sent (base64), "" for "=", None if absent


@dataclass(frozen=True)
class Unknown(Command):
    """A verb we do not implement (500). ``verb`` is made printable for logs."""

    verb: str


@dataclass(frozen=True)
class InvalidCommand(Command):
    """A known verb with bad arguments, or an unusable line: answered with ``reply``."""

    verb: str  # the known verb (for the state gate), or "" when the line had no usable verb
    reply: Reply
    detail: str = ""  # for the log only


def _parse_ehlo_name(args: str, cls, syntax_reply: Reply) -> Command:
    # RFC 5321 §4.1.1.1 asks for a Domain or address literal; like Postfix we accept
    # any printable word, since it is only recorded (in the Received header).
    if not args or " " in args or not args.isprintable() or any("\ud800" <= c <= "\udfff" for c in args):
        return InvalidCommand(cls.verb, syntax_reply)
    return cls(args)


def _parse_mail(args: str) -> Command:
    if args[:5].upper() != "FROM:":
        return InvalidCommand("MAIL", R.R501_MAIL_SYNTAX)
    try:
        inside, rest = _split_path(args[5:].lstrip(" "))
    except ValueError as e:
        return InvalidCommand("MAIL", R.R501_MAIL_SYNTAX, str(e))
    if rest and not rest.startswith(" "):
        return InvalidCommand("MAIL", R.R501_MAIL_SYNTAX, "junk after path")
    path = None
    if inside:
        try:
            path = parse_mailbox(inside)
        except ValueError as e:
            return InvalidCommand("MAIL", R.R501_BAD_SENDER, str(e))
        if not path.domain:
            return InvalidCommand("MAIL", R.R501_BAD_SENDER, "no domain")
    return Mail(path, parse_mail_params(rest), has_params=bool(rest.strip()))


def _parse_rcpt(args: str) -> Command:
    if args[:3].upper() != "TO:":
        return InvalidCommand("RCPT", R.R501_RCPT_SYNTAX)
    try:
        inside, rest = _split_path(args[3:].lstrip(" "))
    except ValueError as e:
        return InvalidCommand("RCPT", R.R501_RCPT_SYNTAX, str(e))
    if rest and not rest.startswith(" "):
        return InvalidCommand("RCPT", R.R501_RCPT_SYNTAX, "junk after path")
    try:
        path = parse_mailbox(inside)
    except ValueError as e:
        return InvalidCommand("RCPT", R.R501_BAD_RECIPIENT, str(e))
    return Rcpt(path, parse_rcpt_params(rest), has_params=bool(rest.strip()))


def _parse_bdat(args: str) -> Command:
    # RFC 3030 §2 (grammar: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ])
    parts = args.split(" ")
    size = parts[0]
    if not (size.isascii() and size.isdigit() and len(size) <= 18) or len(parts) > 2:
        return InvalidCommand("BDAT", R.R501_BDAT_SYNTAX)
    if len(parts) == 2 and parts[1].upper() != "LAST":
        return InvalidCommand("BDAT", R.R501_BDAT_SYNTAX)
    return Bdat(int(size), last=len(parts) == 2)


def _parse_auth(args: str) -> Command:
    # RFC 4954 §4: "AUTH" SP sasl-mech [SP initial-response]
    parts = args.split(" ")
    mech = parts[0].upper()
    if not _AUTH_MECHANISM.match(mech) or len(parts) > 2:
        return InvalidCommand("AUTH", R.R501_AUTH_SYNTAX)
    initial = None
    if len(parts) == 2:
        initial = "" if parts[1] == "=" else parts[1]
    return Auth(mech, initial)


def _no_args(cls):
    def build(args: str) -> Command:
        return InvalidCommand(cls.verb, R.R501_NO_ARGUMENTS) if args else cls()

    return build


def _needs_arg(cls, syntax_reply: Reply):
    def build(args: str) -> Command:
        return cls(args) if args else InvalidCommand(cls.verb, syntax_reply)

    return build


_BUILDERS = {
    "EHLO": lambda a: _parse_ehlo_name(a, Ehlo, R.R501_EHLO_SYNTAX),
    "HELO": lambda a: _parse_ehlo_name(a, Helo, R.R501_HELO_SYNTAX),
    "MAIL": _parse_mail,
    "RCPT": _parse_rcpt,
    "DATA": _no_args(Data),
    "BDAT": _parse_bdat,
    "RSET": _no_args(Rset),
    "NOOP": lambda a: Noop(),  # RFC 5321 §4.1.1.9: an argument is allowed and ignored
    "QUIT": _no_args(Quit),
    "HELP": lambda a: Help(a),
    "VRFY": _needs_arg(Vrfy, R.R501_VRFY_SYNTAX),
    "EXPN": _needs_arg(Expn, R.R501_EXPN_SYNTAX),
    "STARTTLS": _no_args(Starttls),
    "AUTH": _parse_auth,
}

VERBS = frozenset(_BUILDERS)

# The first word of well-known non-SMTP protocols: a client speaking one of these is
# not a confused mail client, and gets one reply and a close.
FOREIGN_VERBS = frozenset({"GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "USER", "CAPA", "A001"})


def strip_terminator(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


def parse_command(line: bytes) -> Command:
    """One command line (terminator optional) → a command object. Never raises."""
    raw = strip_terminator(line)
    if _CONTROL.search(raw):
        verb = raw.split(b" ", 1)[0].decode("ascii", "replace").upper()
        return InvalidCommand(verb if verb in VERBS else "", R.R500_BAD_BYTES, "control character")
    text = raw.decode("utf-8", "surrogateescape")
    word, _, args = text.partition(" ")
    verb = word.upper()
    if verb not in VERBS:
        return Unknown(word.encode("ascii", "backslashreplace").decode()[:32])
    args = args.strip(" ")
    try:
        return _BUILDERS[verb](args)
    except CommandSyntaxError as e:
        return InvalidCommand(verb, e.reply, e.log_detail)
