"""Header fields: splitting, unfolding, RFC 2047 decoding, MIME parameters, addresses.

Everything here works on raw bytes or on their lossless latin-1 decoding, so that the
exact header bytes (8-bit included) can be given back to IMAP clients unchanged.
Nothing here raises on malformed input.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header

_FOLD = re.compile(rb"\r\n|\r|\n")


_LINE_REST = rb"[^\r\n]*(?:\r\n|\r|\n|\Z)(?:[ \t][^\r\n]*(?:\r\n|\r|\n|\Z))*"
# RFC 5322 §3.6.8: field-name = 1*ftext (printable US-ASCII except colon); then the
# value with its continuation lines
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:(" + _LINE_REST + rb")")
_NOT_A_FIELD = re.compile(_LINE_REST)


def _fields(header: bytes) -> list[re.Match]:
    """Matches of _FIELD for each field of the header; lines that are no field (no
    colon, a name with spaces or control characters) are skipped with their
    continuation lines. A blank line ends the header."""
    found = []
    pos, end = 0, len(header)
    while pos < end:
        m = _FIELD.match(header, pos)
        if m is None:
            if header[pos] in b"\r\n":
                break
            m = _NOT_A_FIELD.match(header, pos)
        else:
            found.append(m)
        pos = m.end()
    return found


def raw_fields(header: bytes) -> list[tuple[str, bytes]]:
    """(name, field) pairs of a header block, each field's exact bytes: name as
    written (ASCII), field including continuation lines and line terminators."""
    return [(m.group(1).decode("ascii"), m.group()) for m in _fields(header)]


def header_fields(header: bytes) -> list[tuple[str, bytes]]:
    """(name, unfolded value) pairs of a header block, in order.

    The value is the raw bytes after the colon with line breaks removed (RFC 5322 §2.2.3
    unfolding) and surrounding whitespace stripped; encoded words stay encoded.
    """
    return [(m.group(1).decode("ascii"), _unfolded(m)) for m in _fields(header)]


def _unfolded(m: re.Match) -> bytes:
    value = m.group(2).rstrip(b"\r\n")
    if b"\n" in value or b"\r" in value:
        value = _FOLD.sub(b"", value)
    return value.strip(b" \t")


def without_fields(header: bytes, drop: Callable[[str, bytes], bool]) -> bytes:
    """``header`` without the fields for which ``drop(name, value)`` is true (name as
    written, value as header_fields gives it), continuation lines included; every other
    byte stays as it was."""
    kept, pos = [], 0
    for m in _fields(header):
        if drop(m.group(1).decode("ascii"), _unfolded(m)):
            kept.append(header[pos:m.start()])
            pos = m.end()
    kept.append(header[pos:])
    return b"".join(kept)


def first_values(fields: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """Lowercased field name -> value of its first occurrence."""
    values: dict[str, bytes] = {}
    for name, value in fields:
        values.setdefault(name.lower(), value)
    return values


def to_text(value: bytes) -> str:
    """Bytes of a header or body as text: UTF-8 when valid, else latin-1 (never fails)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


_CACHED_LENGTH = 512  # longer values are not cached: the caches must stay small


def decode_words(value: bytes) -> str:
    """Decode a header value for display and search: 8-bit bytes and RFC 2047 words."""
    if len(value) <= _CACHED_LENGTH:
        return _decode_words_cached(value)
    return _decode_words(value)


# analyze() decodes Subject and the address names twice (display and header search),
# and mailing lists repeat them across messages
@functools.lru_cache(maxsize=1024)
def _decode_words_cached(value: bytes) -> str:
    return _decode_words(value)


_DECODE_LIMIT = 16384  # email.header.decode_header is quadratic; decode this much


def _decode_words(value: bytes) -> str:
    text = to_text(value)
    if "=?" not in text:
        return text
    # Past the limit the text stays as written: still searchable, never slow.
    cut = text.rfind(" ", 0, _DECODE_LIMIT) if len(text) > _DECODE_LIMIT else len(text)
    if cut <= 0:
        cut = min(len(text), _DECODE_LIMIT)
    text, rest = text[:cut], text[cut:]
    try:
        chunks = decode_header(text)
    except (HeaderParseError, ValueError):
        return text + rest
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:
            # decode_header hands back the plain stretches encoded this way
            out.append(chunk.decode("raw-unicode-escape", "replace"))
        else:
            out.append(decode_charset(chunk, charset.split("*")[0]))
    return "".join(out) + rest


def decode_charset(data: bytes, charset: str) -> str:
    """Decode `data` in a declared charset; unknown or mislabelled ASCII falls back."""
    charset = charset.strip().lower() or "us-ascii"
    if charset in ("us-ascii", "ascii", "unknown-8bit", "x-unknown"):
        # 8-bit text labelled ASCII is nearly always UTF-8 or latin-1
        return to_text(data)
    try:
        return data.decode(charset, "replace")
    except (LookupError, ValueError):
        # unknown names, and codecs such as idna or "undefined" that refuse "replace"
        return to_text(data)


# --- MIME parameters (RFC 2045 §5.1, RFC 2231) ------------------------------------------

def _skip_cfws(s: str, i: int) -> int:
    """Index of the first character at or after i that is neither whitespace nor comment."""
    n = len(s)
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            i = _comment_end(s, i)
        else:
            break
    return i


def _comment_end(s: str, i: int) -> int:
    """Index just past the (possibly nested) comment starting at s[i] == '('."""
    depth = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"?', re.S)
_ESCAPE = re.compile(r"\\(.)", re.S)
# RFC 2045 §5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>
_MIME_TOKEN = re.compile(r'[^\x00-\x20()<>@,;:\\"/\[\]?=\x7f]*')
_BARE_VALUE = re.compile(r'[^\x00-\x20;"\x7f]*')  # lenient: what senders put unquoted


def _quoted(s: str, i: int) -> tuple[str, int]:
    """Unescaped content of the quoted string at s[i] == '"', and the index after it."""
    m = _QUOTED.match(s, i)
    text = m.group(1)
    return (_ESCAPE.sub(r"\1", text) if "\\" in text else text), m.end()


def _token(s: str, i: int, pattern: re.Pattern = _MIME_TOKEN) -> tuple[str, int]:
    m = pattern.match(s, i)
    return m.group(), m.end()


def leading_value(value: str) -> str:
    """The token or quoted-string (unquoted) that opens a structured field's value, after
    any comments (RFC 2045 §5.1 value): e.g. Authentication-Results' authserv-id (RFC 8601 §2.2)."""
    i = _skip_cfws(value, 0)
    if value[i:i + 1] == '"':
        return _quoted(value, i)[0]
    return _token(value, i)[0]


def parse_mime_value(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type or Content-Disposition value into its head and parameters.

    The head is e.g. "text/plain" or "attachment" (lowercase; "" when unreadable).
    Parameter names are lowercased; the first occurrence wins; RFC 2231 continuations
    (name*0, name*1*) are joined, and a name whose value carries RFC 2231 encoding keeps
    its trailing '*' (as Dovecot shows it in BODYSTRUCTURE).
    """
    if len(value) > _CACHED_LENGTH:
        return _parse_mime_value(value)
    head, params = _parse_mime_value_cached(value)
    return head, dict(params)  # the caller's own copy: the cached one is shared


# nearly every text part says one of a few "text/plain; charset=..." values
@functools.lru_cache(maxsize=1024)
def _parse_mime_value_cached(value: str) -> tuple[str, dict[str, str]]:
    return _parse_mime_value(value)


def _parse_mime_value(value: str) -> tuple[str, dict[str, str]]:
    head, i = _token(value, _skip_cfws(value, 0))
    i = _skip_cfws(value, i)
    if value[i:i + 1] == "/":
        sub, i = _token(value, _skip_cfws(value, i + 1))
        head = head + "/" + sub
    raw_params: list[tuple[str, str]] = []
    n = len(value)
    while i < n:
        semi = value.find(";", i)
        if semi < 0:
            break
        i = _skip_cfws(value, semi + 1)
        name, i = _token(value, i)
        i = _skip_cfws(value, i)
        if not name or value[i:i + 1] != "=":
            continue
        i = _skip_cfws(value, i + 1)
        if value[i:i + 1] == '"':
            val, i = _quoted(value, i)
        else:
            val, i = _token(value, i, _BARE_VALUE)
        raw_params.append((name.lower(), val))
    return head.lower(), _join_rfc2231(raw_params)


_SECTION = re.compile(r"^(.*?)\*(\d+)(\*?)$")


def _join_rfc2231(raw_params: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    sections: dict[str, list[tuple[int, str, bool]]] = {}
    order: list[str] = []
    for name, val in raw_params:
        m = _SECTION.match(name)
        if m:
            base = m.group(1)
            if base not in sections:
                sections[base] = []
                order.append(base)
            sections[base].append((int(m.group(2)), val, bool(m.group(3))))
        elif name not in params:
            params[name] = val
            order.append(name)
    joined: dict[str, str] = {}
    for name in order:
        if name in sections:
            parts = sorted(sections[name], key=lambda p: p[0])
            key = name + "*" if parts[0][2] else name
            joined.setdefault(key, "".join(p[1] for p in parts))
        else:
            joined.setdefault(name, params[name])
    return joined


def param_text(params: dict[str, str], name: str) -> str | None:
    """A parameter's decoded value: RFC 2231 (name*) or RFC 2047 (name) forms."""
    extended = params.get(name + "*")
    if extended is not None:
        charset, _, rest = extended.partition("'")
        if not rest:
            return urllib.parse.unquote(extended, errors="replace")
        _, _, encoded = rest.partition("'")
        try:
            return urllib.parse.unquote(encoded, encoding=charset or "us-ascii", errors="replace")
        except (LookupError, ValueError):
            return urllib.parse.unquote(encoded, encoding="latin-1")
    plain = params.get(name)
    if plain is None:
        return None
    return decode_words(plain.encode("latin-1"))


# --- addresses (RFC 5322 §3.4) ------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """One entry of an address list, shaped like an IMAP ENVELOPE address.

    A group start has `mailbox` = group name and `host` None; a group end has all None
    (RFC 3501 §7.4.2). Strings are latin-1 decodings of the raw header bytes.
    """

    name: str | None  # display name (phrase or trailing comment), raw encoded words kept
    route: str | None  # obsolete source route, e.g. "@relay"
    mailbox: str | None  # local part, or the group name at a group start
    host: str | None  # domain; "" for an address without one; None marks a group

    @property
    def is_group_start(self) -> bool:
        return self.host is None and self.mailbox is not None

    @property
    def is_group_end(self) -> bool:
        return self.host is None and self.mailbox is None


# quoted string (closing quote optional), domain literal, special, or atom
_ADDR_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"?|(\[[^\]]*\]?)|([<>,:;@])'
                         r'|([^ \t\r\n<>,:;@"(\[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+)', re.S)
# RFC 5322 allows no control characters in an address: one (a NUL above all) ends the
# entry like a comma, so that no reader can take "a@x<NUL>b@y" for a single address
_CONTROL = frozenset(chr(c) for c in (*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), 0x7f))


def _address_tokens(s: str) -> list[tuple[str, str]]:
    """Tokens of an address list: ('s', special), ('q', quoted), ('c', comment), ('a', atom)."""
    tokens = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif c in _CONTROL:
            tokens.append(("s", ","))
            i += 1
        elif c == "(":
            end = _comment_end(s, i)
            tokens.append(("c", s[i + 1:end - 1].strip()))
            i = end
        else:
            m = _ADDR_TOKEN.match(s, i)
            quoted, literal, special, atom = m.groups()
            if quoted is not None:
                tokens.append(("q", _ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted))
            elif special is not None:
                tokens.append(("s", special))
            else:
                tokens.append(("a", literal or atom))
            i = m.end()
    return tokens


def _spec(tokens: list[tuple[str, str]]) -> tuple[str | None, str, str]:
    """(route, mailbox, host) of the tokens of an addr-spec, possibly with a route."""
    route = None
    if tokens and tokens[0] == ("s", "@"):
        colon = next((k for k, t in enumerate(tokens) if t == ("s", ":")), -1)
        if colon > 0:
            route = "".join(t for _, t in tokens[:colon])
            tokens = tokens[colon + 1:]
    at = max((k for k, t in enumerate(tokens) if t == ("s", "@")), default=-1)
    if at < 0:
        return route, "".join(t for _, t in tokens), ""
    return route, "".join(t for _, t in tokens[:at]), "".join(t for _, t in tokens[at + 1:])


def parse_addresses(value: bytes) -> tuple[Address, ...]:
    """Parse an address-list header value into IMAP envelope addresses.

    Lenient: whatever looks like an address is kept, garbage is dropped, an unclosed
    group is closed. A display name comes from the phrase, or else from a comment.
    """
    if len(value) <= _CACHED_LENGTH:
        return _parse_addresses_cached(value)
    return _parse_addresses(value)


# one message asks for From up to four times (ENVELOPE from, sender and reply-to
# defaults, display), and the same senders recur across messages
@functools.lru_cache(maxsize=1024)
def _parse_addresses_cached(value: bytes) -> tuple[Address, ...]:
    return _parse_addresses(value)


def _parse_addresses(value: bytes) -> tuple[Address, ...]:
    tokens = _address_tokens(value.decode("latin-1"))
    out: list[Address] = []
    phrase: list[tuple[str, str]] = []
    comment: str | None = None
    in_group = False
    done = False  # an angle address ended this entry; ignore the rest up to ',' or ';'

    def finish() -> None:
        nonlocal phrase, comment, done
        if phrase and not done:
            route, mailbox, host = _spec(phrase)
            if mailbox or host:
                out.append(Address(comment or None, route, mailbox, host))
        phrase, comment, done = [], None, False

    k = 0
    while k < len(tokens):
        kind, text = tokens[k]
        if kind == "c":
            comment = text or comment
        elif kind == "s" and text == "<":
            end = next((j for j in range(k + 1, len(tokens)) if tokens[j] == ("s", ">")), len(tokens))
            inner = [t for t in tokens[k + 1:end] if t[0] != "c"]
            name = " ".join(t for _, t in phrase) or None
            if not done:
                # "<>" (a bounce's null sender) is still an address, with nothing in it
                route, mailbox, host = _spec(inner)
                out.append(Address(name, route, mailbox, host))
            phrase, comment, done = [], None, True
            k = end
        elif kind == "s" and text == ":" and not in_group and not done and phrase:
            out.append(Address(None, None, " ".join(t for _, t in phrase), None))
            phrase, comment = [], None
            in_group = True
        elif kind == "s" and text == ",":
            finish()
        elif kind == "s" and text == ";" and in_group:
            finish()
            out.append(Address(None, None, None, None))
            in_group = False
        elif not done:
            phrase.append((kind, text))
        k += 1
    finish()
    if in_group:
        out.append(Address(None, None, None, None))
    return tuple(out)


def display_addresses(value: bytes) -> str:
    """Decoded, readable form of an address list, e.g. 'Alice <a@x.org>, b@y.org'."""
    return display(parse_addresses(value), value)


# RFC 5322 §3.2.3 specials (without ".", common in plain names): a decoded name holding
# one is quoted, so that "Bank, CEO <ceo@bank.example>" stays one name on display; a
# local part also when it holds a space or a control character
_PHRASE_SPECIALS = re.compile(r'[()<>\[\]:;@\\,"]')
_LOCAL_SPECIALS = re.compile(r'[()<>\[\]:;@\\,"\s\x00-\x1f\x7f]')
# a domain holding one (not a domain literal's brackets) is shown in angle brackets, where
# the parser keeps it whole: "<ceo@bank.co.uk,>" is one address, not ceo@bank.co.uk and a comma
_DOMAIN_SPECIALS = re.compile(r'[()<>:;@\\,"\s\x00-\x1f\x7f]')


def display(addresses: tuple[Address, ...], value: bytes = b"") -> str:
    """Decoded, readable form of parsed addresses; ``value``, decoded, when there are none.

    Names and local parts are quoted where they need it, so the text parses back
    (parse_addresses) to the same addresses: a decoded display name cannot pose as
    another address or split the list, and "ceo@bank.example"@evil.example shows its domain.
    """
    items = []
    group: list[str] | None = None
    group_name = ""
    for addr in addresses:
        if addr.is_group_start:
            group, group_name = [], _quote_if(decode_words((addr.mailbox or "").encode("latin-1")), _PHRASE_SPECIALS)
            continue
        if addr.is_group_end:
            if group is not None:
                items.append(f"{group_name}: {', '.join(group)};")
            group = None
            continue
        local = _quote_if(addr.mailbox or "", _LOCAL_SPECIALS)
        spec = to_text((local + ("@" + addr.host if addr.host else "")).encode("latin-1"))
        if addr.name:
            text = f"{_quote_if(decode_words(addr.name.encode('latin-1')), _PHRASE_SPECIALS)} <{spec}>"
        elif not spec or _DOMAIN_SPECIALS.search(addr.host or ""):
            text = f"<{spec}>"
        else:
            text = spec
        (group if group is not None else items).append(text)
    if not items and value:
        return decode_words(value)
    return ", ".join(items)


def _quote_if(text: str, specials: re.Pattern) -> str:
    """RFC 5322 §3.2.4 quoted-string of ``text`` when it holds one of ``specials``."""
    if specials.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def mailboxes(value: bytes) -> list[str]:
    """The addresses of an address list, "local@domain" as written (no domain: the local part).

    Read from the raw bytes with parse_addresses, the parser behind ENVELOPE and the TUI:
    an encoded word is a name or an atom, never an address (RFC 2047 §5).
    """
    return _specs(parse_addresses(value))


def _specs(addresses: tuple[Address, ...]) -> list[str]:
    # the parser keeps latin-1 text of the bytes; an 8-bit address (RFC 6532) is UTF-8
    return [to_text((f"{a.mailbox}@{a.host}" if a.host else a.mailbox).encode("latin-1"))
            for a in addresses if a.host is not None and (a.mailbox or a.host)]


def from_addresses(fields: list[tuple[str, bytes]]) -> tuple[Address, ...]:
    """The addresses of every From field of a header, in order: ENVELOPE's from, what the
    TUI shows and what DMARC checks. A second From field is shown as it is checked."""
    return tuple(a for name, value in fields if name.lower() == "from" for a in parse_addresses(value))


@dataclass(frozen=True)
class Author:
    """Who a message says it is from (RFC 5322 §3.6.2), as ``author`` reads it."""

    fields: int  # how many From fields the header has (RFC 5322 allows exactly one)
    addresses: tuple[str, ...]  # the addresses of from_addresses(), as mailboxes() gives them

    @property
    def domains(self) -> tuple[str, ...]:
        """The distinct domains of the addresses, lower-cased, trailing dot removed, in order."""
        found = (a.rpartition("@")[2].lower().rstrip(".") for a in self.addresses if "@" in a)
        return tuple(dict.fromkeys(d for d in found if d))

    @property
    def single(self) -> bool:
        """One From field naming one domain: the only shape DMARC can align (RFC 7489 §6.6.1)."""
        return self.fields == 1 and len(self.domains) == 1 and all("@" in a for a in self.addresses)


def author(fields: list[tuple[str, bytes]]) -> Author:
    """Who a message is from, given its top-level header_fields(): the one answer for
    DMARC, the filters, Sieve and the DKIM signing domain."""
    count = sum(1 for name, _ in fields if name.lower() == "from")
    return Author(count, tuple(_specs(from_addresses(fields))))
