"""A Sieve subset (RFC 5228) with imap4flags (RFC 5232), vacation (RFC 5230), mailbox (RFC 5490),
relational (RFC 5231) and date (RFC 5260).

``parse(text)`` turns a script into a list of ``Command`` trees or raises ``SieveError``
with the line and the reason; ``run(commands, env)`` evaluates it for one message and
returns the ``Actions`` it chose. Supported:

- control: require, if / elsif / else, stop
- actions: keep, discard, fileinto (with :copy, RFC 3894, and :create, RFC 5490), redirect
  (with :copy), reject, vacation, setflag / addflag / removeflag; tagged arguments a command
  does not take are errors
- tests: address, header, envelope, exists, size, mailboxexists, date, currentdate, allof, anyof,
  not, true, false
- match types :is, :contains, :matches, :value and :count; address parts :all, :localpart,
  :domain; comparators i;ascii-casemap (default), i;octet and i;ascii-numeric.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from typing import Callable

CAPABILITIES = frozenset({"fileinto", "reject", "envelope", "vacation", "imap4flags", "copy", "mailbox",
                          "relational", "date", "comparator-i;octet", "comparator-i;ascii-casemap",
                          "comparator-i;ascii-numeric"})
_MATCH_TYPES = (":is", ":contains", ":matches", ":value", ":count")
_MATCH = {*_MATCH_TYPES, ":comparator"}
_RELATIONS = {"gt", "ge", "lt", "le", "eq", "ne"}  # RFC 5231 §4
_COMPARATORS = {"i;ascii-casemap", "i;octet", "i;ascii-numeric"}
# RFC 5260 §4.2: the date parts a date or currentdate test may extract.
_DATE_PARTS = {"year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601", "std11",
               "zone", "weekday"}
_ZONE = re.compile(r"[+-]\d{4}\Z")
_PARTS = {":all", ":localpart", ":domain"}
# The tagged arguments each command and test takes (RFC 5228 §2.6.2: others are errors).
_TAGS = {"keep": {":flags"}, "fileinto": {":flags", ":copy", ":create"}, "redirect": {":copy"},
         "vacation": {":days", ":subject", ":from", ":addresses", ":handle", ":mime"},
         "header": _MATCH, "address": _MATCH | _PARTS, "envelope": _MATCH | _PARTS, "size": {":over", ":under"},
         "date": _MATCH | {":zone", ":originalzone"}, "currentdate": _MATCH | {":zone"}}
# Tagged arguments that belong to an extension (RFC 5232 :flags, RFC 3894 :copy, RFC 5490 :create,
# RFC 5231 :value and :count).
_TAG_NEEDS = {":flags": "imap4flags", ":copy": "copy", ":create": "mailbox", ":value": "relational",
              ":count": "relational"}
# What each command or test needs in ``require`` (RFC 5228 §3.2: using it without is an error).
_NEEDS = {"fileinto": "fileinto", "reject": "reject", "envelope": "envelope", "vacation": "vacation",
          "setflag": "imap4flags", "addflag": "imap4flags", "removeflag": "imap4flags", "mailboxexists": "mailbox",
          "date": "date", "currentdate": "date"}
_ACTIONS = {"keep", "discard", "fileinto", "redirect", "reject", "vacation", "setflag", "addflag", "removeflag",
            "stop", "require"}
_TESTS = {"address", "header", "envelope", "exists", "size", "mailboxexists", "date", "currentdate", "allof",
          "anyof", "not", "true", "false"}
MAX_REDIRECTS = 5  # redirects one script may make per message (RFC 5228 §4.2 allows a limit)


class SieveError(Exception):
    def __init__(self, line: int, reason: str):
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


# -- lexing --------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>\#[^\n]*|/\*.*?\*/)
  | (?P<multiline>text:[ \t]*(?:\#[^\n]*)?\r?\n(?P<body>.*?)^\.\r?$)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>\d+[KMGkmg]?)
  | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[;,\[\](){}])
""", re.X | re.S | re.M)


@dataclass
class Token:
    kind: str
    value: object
    line: int


def tokenize(text: str) -> list[Token]:
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text.startswith("/*", pos):
                raise SieveError(line, "unterminated comment")
            if text[pos] == '"':
                raise SieveError(line, "unterminated string")
            raise SieveError(line, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup if m.lastgroup != "body" else "multiline"
        if kind == "multiline":
            body = m.group("body")
            # RFC 5228 §2.4.2: a line starting with ".." stands for one starting with "."
            value = re.sub(r"^\.\.", ".", body, flags=re.M).replace("\r\n", "\n")
            tokens.append(Token("string", value, line))
        elif kind == "string":
            tokens.append(Token("string", re.sub(r"\\(.)", r"\1", m.group()[1:-1], flags=re.S), line))
        elif kind == "number":
            raw = m.group()
            scale = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}.get(raw[-1].lower(), 1)
            tokens.append(Token("number", int(raw.rstrip("KMGkmg")) * scale, line))
        elif kind in ("tag", "ident", "punct"):
            tokens.append(Token(kind, m.group().lower() if kind != "punct" else m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    return tokens


# -- parsing -------------------------------------------------------------------------------

@dataclass
class Test:
    name: str
    tags: dict[str, object]  # ":is" -> True, ":days" -> 7, ":comparator" -> "i;octet"
    args: list  # strings, string lists and numbers, in order
    tests: list["Test"]
    line: int


@dataclass
class Command:
    name: str
    tags: dict[str, object]
    args: list
    test: Test | None = None  # if / elsif
    tests: list[Test] = field(default_factory=list)
    block: list["Command"] = field(default_factory=list)
    line: int = 0


# Tags that take a value (RFC 5228 §2.7.3, RFC 5230 §4, RFC 5232 §5, RFC 5231 §4, RFC 5260 §4.1).
_TAG_VALUE = {":comparator", ":days", ":subject", ":from", ":addresses", ":handle", ":flags", ":value", ":count",
              ":zone"}


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.pos = 0
        self.required: set[str] = set()

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            raise SieveError(self.tokens[-1].line if self.tokens else 1, f"unexpected end of script, expected {what}")
        self.pos += 1
        return token

    def expect(self, punct: str) -> None:
        token = self.next(f"'{punct}'")
        if token.kind != "punct" or token.value != punct:
            raise SieveError(token.line, f"expected '{punct}', found {token.value!r}")

    def commands(self, top: bool) -> list[Command]:
        out = []
        while True:
            token = self.peek()
            if token is None:
                if not top:
                    raise SieveError(self.tokens[-1].line, "missing '}'")
                return out
            if token.kind == "punct" and token.value == "}" and not top:
                return out
            out.append(self.command(out))

    def command(self, previous: list[Command]) -> Command:
        token = self.next("a command")
        if token.kind != "ident":
            raise SieveError(token.line, f"expected a command, found {token.value!r}")
        name = token.value
        if name in ("elsif", "else") and not (previous and previous[-1].name in ("if", "elsif")):
            raise SieveError(token.line, f"'{name}' without 'if'")
        if name not in _ACTIONS and name not in ("if", "elsif", "else"):
            raise SieveError(token.line, f"unknown command '{name}'")
        self.needs(name, token.line)
        if name == "require" and any(c.name != "require" for c in previous):
            raise SieveError(token.line, "'require' must come before other commands")
        cmd = Command(name, {}, [], line=token.line)
        if name in ("if", "elsif"):
            cmd.test = self.test()
        elif name != "else":
            cmd.tags, cmd.args = self.arguments()
            self.check_tags(name, cmd.tags, token.line)
        if name in ("if", "elsif", "else"):
            self.expect("{")
            cmd.block = self.commands(top=False)
            self.expect("}")
        else:
            self.expect(";")
        self.validate(cmd)
        if name == "require":
            for capability in _strings(cmd.args[0]):
                if capability not in CAPABILITIES:
                    raise SieveError(token.line, f"unsupported extension \"{capability}\"")
                self.required.add(capability)
        return cmd

    def needs(self, name: str, line: int) -> None:
        capability = _NEEDS.get(name)
        if capability and capability not in self.required:
            raise SieveError(line, f"'{name}' needs require \"{capability}\"")

    def arguments(self) -> tuple[dict, list]:
        tags, args = {}, []
        while True:
            token = self.peek()
            if token is None:
                return tags, args
            if token.kind == "tag":
                self.pos += 1
                if token.value in _TAG_VALUE:
                    value = self.next(f"a value for {token.value}")
                    if value.kind == "punct" and value.value == "[":
                        self.pos -= 1
                        tags[token.value] = self.string_list()
                    elif value.kind in ("string", "number"):
                        tags[token.value] = value.value
                    else:
                        raise SieveError(value.line, f"{token.value} needs a value")
                else:
                    tags[token.value] = True
            elif token.kind in ("string", "number"):
                self.pos += 1
                args.append(token.value)
            elif token.kind == "punct" and token.value == "[":
                args.append(self.string_list())
            else:
                return tags, args

    def string_list(self) -> list[str]:
        self.expect("[")
        items = []
        while True:
            token = self.next("a string")
            if token.kind != "string":
                raise SieveError(token.line, f"expected a string, found {token.value!r}")
            items.append(token.value)
            token = self.next("',' or ']'")
            if token.kind == "punct" and token.value == "]":
                return items
            if not (token.kind == "punct" and token.value == ","):
                raise SieveError(token.line, f"expected ',' or ']', found {token.value!r}")

    def test(self) -> Test:
        token = self.next("a test")
        if token.kind != "ident" or token.value not in _TESTS:
            raise SieveError(token.line, f"unknown test {token.value!r}")
        self.needs(token.value, token.line)
        test = Test(token.value, {}, [], [], token.line)
        if test.name in ("allof", "anyof"):
            self.expect("(")
            test.tests.append(self.test())
            while (t := self.next("',' or ')'")).value == ",":
                test.tests.append(self.test())
            if t.value != ")":
                raise SieveError(t.line, f"expected ')', found {t.value!r}")
        elif test.name == "not":
            test.tests.append(self.test())
        else:
            test.tags, test.args = self.arguments()
            self.check_tags(test.name, test.tags, token.line)
        _check_test(test)
        return test

    def check_tags(self, name: str, tags: dict, line: int) -> None:
        for tag in tags:
            if tag not in _TAGS.get(name, ()):
                raise SieveError(line, f"'{name}' takes no {tag}")
            if tag in _TAG_NEEDS and _TAG_NEEDS[tag] not in self.required:
                raise SieveError(line, f"{tag} needs require \"{_TAG_NEEDS[tag]}\"")

    def validate(self, cmd: Command) -> None:
        arity = {"keep": 0, "discard": 0, "stop": 0, "fileinto": 1, "redirect": 1, "reject": 1, "require": 1,
                 "vacation": 1, "setflag": 1, "addflag": 1, "removeflag": 1}
        wanted = arity.get(cmd.name)
        if wanted is not None and len(cmd.args) != wanted:
            raise SieveError(cmd.line, f"'{cmd.name}' takes {wanted} argument{'s' if wanted != 1 else ''}")
        if cmd.name in ("fileinto", "redirect", "reject") and not isinstance(cmd.args[0], str):
            raise SieveError(cmd.line, f"'{cmd.name}' takes a string")
        if cmd.name == "redirect" and "@" not in cmd.args[0]:
            raise SieveError(cmd.line, f"'{cmd.args[0]}' is not an address")
        if cmd.name == "vacation" and not isinstance(cmd.tags.get(":days", 7), int):
            raise SieveError(cmd.line, ":days takes a number")


def _check_test(test: Test) -> None:
    if test.name in ("header", "address", "envelope"):
        if len(test.args) != 2:
            raise SieveError(test.line, f"'{test.name}' takes a header list and a key list")
    elif test.name == "exists" and len(test.args) != 1:
        raise SieveError(test.line, "'exists' takes a header list")
    elif test.name == "mailboxexists" and len(test.args) != 1:
        raise SieveError(test.line, "'mailboxexists' takes a mailbox list")  # RFC 5490 §3.1
    elif test.name == "size":
        if not (len(test.args) == 1 and isinstance(test.args[0], int) and (":over" in test.tags) != (":under" in test.tags)):
            raise SieveError(test.line, "'size' takes :over or :under and a number")
    elif test.name in ("date", "currentdate"):
        # RFC 5260 §4: date <header-name> <date-part> <key-list>; currentdate <date-part> <key-list>
        wanted = 3 if test.name == "date" else 2
        if len(test.args) != wanted or not all(isinstance(a, str) for a in test.args[:-1]):
            raise SieveError(test.line, f"'{test.name}' takes {'a header name, ' if wanted == 3 else ''}"
                                        "a date part and a key list")
        if test.args[-2].lower() not in _DATE_PARTS:
            raise SieveError(test.line, f"unknown date part \"{test.args[-2]}\"")
        zone = test.tags.get(":zone")
        if zone is not None and not (isinstance(zone, str) and _ZONE.match(zone)):
            raise SieveError(test.line, ":zone takes an offset like \"+0700\"")
        if ":zone" in test.tags and ":originalzone" in test.tags:
            raise SieveError(test.line, ":zone and :originalzone together")
    comparator = test.tags.get(":comparator", "i;ascii-casemap")
    if comparator not in _COMPARATORS:
        raise SieveError(test.line, f"unsupported comparator {comparator!r}")
    if sum(t in test.tags for t in _MATCH_TYPES) > 1:
        raise SieveError(test.line, "more than one match type")
    if comparator == "i;ascii-numeric" and (":contains" in test.tags or ":matches" in test.tags):
        raise SieveError(test.line, "i;ascii-numeric compares whole numbers only")   # RFC 4790 §9.1
    for tag in (":value", ":count"):
        if tag in test.tags and str(test.tags[tag]).lower() not in _RELATIONS:
            raise SieveError(test.line, f"{tag} takes one of {', '.join(sorted(_RELATIONS))}")  # RFC 5231 §4


def parse(text: str) -> list[Command]:
    """The script as command trees. Raises SieveError (with the line) for an invalid script."""
    return _Parser(tokenize(text)).commands(top=True)


def _strings(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def filings(commands: list[Command], existing: frozenset[str] = frozenset()) -> list["Filing"]:
    """Every ``fileinto`` of a script, run or not, in script order (for checking a script),
    but one under ``if mailboxexists`` of its folder: it runs only when the folder is there."""
    out = []
    for cmd in commands:
        if cmd.name == "fileinto" and cmd.args[0] not in existing:
            out.append(Filing(cmd.args[0], cmd.line, ":create" in cmd.tags))
        out += filings(cmd.block, existing | _proven(cmd.test))
    return out


def _proven(test: Test | None) -> frozenset[str]:
    """The mailboxes ``test`` being true proves to exist (RFC 5490 §3.1: mailboxexists is
    true only when every one it names is there)."""
    if test is None:
        return frozenset()
    if test.name == "mailboxexists":
        return frozenset(_strings(test.args[0]))
    if test.name == "allof":
        return frozenset().union(*(_proven(t) for t in test.tests))
    return frozenset()


# -- running -------------------------------------------------------------------------------

@dataclass
class Env:
    """What a script may look at for one message and one recipient."""

    header: Callable[[str], list[str]]  # decoded values of a header field
    addresses: Callable[[str], list[str]]  # the addresses of a header field (Incoming.addresses)
    envelope_from: str
    envelope_to: str
    size: int
    mailbox_exists: Callable[[str], bool] = lambda name: False  # the recipient has this mailbox (RFC 5490 §3.1)
    now: Callable[[], datetime] = lambda: datetime.now().astimezone()  # currentdate's clock (RFC 5260 §5)


@dataclass(frozen=True)
class Filing:
    """One ``fileinto``: the folder, the script line that asked, and whether :create was given."""

    folder: str
    line: int
    create: bool = False


@dataclass
class Actions:
    keep: bool = True  # the implicit keep (or an explicit one, see ``explicit_keep``)
    explicit_keep: bool = False
    filings: list[Filing] = field(default_factory=list)  # fileinto, one per folder, in script order
    redirects: list[str] = field(default_factory=list)
    reject: str | None = None
    vacation: dict | None = None  # the vacation command's tags and reason
    flags: set[str] = field(default_factory=set)  # imap4flags' internal variable
    discarded: bool = False

    @property
    def folders(self) -> list[str]:
        return [f.folder for f in self.filings]


class _Stop(Exception):
    pass


def run(commands: list[Command], env: Env) -> Actions:
    return run_in_order([commands], env)


def run_in_order(scripts: list[list[Command]], env: Env) -> Actions:
    """Run several scripts one after the other for one message, as Pigeonhole runs its
    ``sieve_before`` scripts ahead of the user's: their actions accumulate into one set,
    ``stop`` in any script ends them all (RFC 5228 §3.3), and the implicit keep stays only
    if no script cancelled it (§2.10.2)."""
    actions = Actions()
    try:
        for commands in scripts:
            _block(commands, env, actions)
    except _Stop:
        pass
    return actions


def _block(commands: list[Command], env: Env, a: Actions) -> None:
    taken = False  # whether an if/elsif of the current chain matched
    for cmd in commands:
        if cmd.name == "if":
            taken = _test(cmd.test, env)
            if taken:
                _block(cmd.block, env, a)
        elif cmd.name == "elsif":
            if not taken and _test(cmd.test, env):
                taken = True
                _block(cmd.block, env, a)
        elif cmd.name == "else":
            if not taken:
                _block(cmd.block, env, a)
        else:
            _action(cmd, env, a)


def _action(cmd: Command, env: Env, a: Actions) -> None:
    name = cmd.name
    if name == "stop":
        raise _Stop
    if name == "keep":
        a.explicit_keep = True
        a.flags |= set(_strings(cmd.tags.get(":flags", [])))
    elif name == "discard":
        a.discarded = True
        a.keep = False
    elif name == "fileinto":
        if cmd.args[0] not in a.folders:
            a.filings.append(Filing(cmd.args[0], cmd.line, ":create" in cmd.tags))
        a.flags |= set(_strings(cmd.tags.get(":flags", [])))
        a.keep = False
    elif name == "redirect":
        if len(a.redirects) < MAX_REDIRECTS and cmd.args[0].lower() not in a.redirects:
            a.redirects.append(cmd.args[0].lower())
        if ":copy" not in cmd.tags:
            a.keep = False
    elif name == "reject":
        a.reject = cmd.args[0]
        a.keep = False
    elif name == "vacation":
        # One reply per message: the first vacation run wins, so the account page's
        # out-of-office (run first) is the one a sender gets (RFC 5230 §4.7).
        if a.vacation is None:
            a.vacation = {"reason": cmd.args[0], **{k[1:]: v for k, v in cmd.tags.items()}}
    elif name in ("setflag", "addflag", "removeflag"):
        flags = {f for item in _strings(cmd.args[0]) for f in item.split()}
        a.flags = flags if name == "setflag" else (a.flags | flags if name == "addflag" else a.flags - flags)


def _test(test: Test, env: Env) -> bool:
    name = test.name
    if name == "true":
        return True
    if name == "false":
        return False
    if name == "not":
        return not _test(test.tests[0], env)
    if name == "allof":
        return all(_test(t, env) for t in test.tests)
    if name == "anyof":
        return any(_test(t, env) for t in test.tests)
    if name == "exists":
        return all(env.header(h) for h in _strings(test.args[0]))
    if name == "mailboxexists":
        return all(env.mailbox_exists(m) for m in _strings(test.args[0]))
    if name == "size":
        return env.size > test.args[0] if ":over" in test.tags else env.size < test.args[0]
    if name in ("date", "currentdate"):
        values = _dates(test, env)
        return _matches(values, _strings(test.args[-1]), test.tags)
    names, keys = _strings(test.args[0]), _strings(test.args[1])
    if name == "header":
        values = [v for h in names for v in env.header(h)]
    elif name == "address":
        values = [_part(a, test.tags) for h in names for a in env.addresses(h)]
    else:  # envelope: "from" and "to" (RFC 5228 §5.4)
        found = {"from": env.envelope_from, "to": env.envelope_to}
        values = [_part(found[h.lower()], test.tags) for h in names if h.lower() in found]
    return _matches(values, keys, test.tags)


def _matches(values: list[str], keys: list[str], tags: dict) -> bool:
    if ":count" in tags:
        # RFC 5231 §4.1: the number of values is compared with each key.
        return any(_match(str(len(values)), k, tags) for k in keys)
    return any(_match(v, k, tags) for v in values for k in keys)


def _dates(test: Test, env: Env) -> list[str]:
    """The date part a date or currentdate test looks at (RFC 5260 §4-§5): none when the
    header is absent or no date can be read from it."""
    zone = test.tags.get(":zone")
    if test.name == "currentdate":
        found = [env.now()]
    else:
        found = []
        for value in env.header(test.args[0])[:1]:  # RFC 5260 §4.1: the first occurrence
            try:
                found.append(parsedate_to_datetime(value))
            except (TypeError, ValueError, IndexError):
                pass
    out = []
    for when in found:
        if when.tzinfo is None:   # "-0000": the zone is unknown, the time is UTC (RFC 5322 §3.3)
            when = when.replace(tzinfo=timezone.utc)
        if zone is not None:
            sign = -1 if zone[0] == "-" else 1
            when = when.astimezone(timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))))
        elif test.name == "date" and ":originalzone" not in test.tags:
            when = when.astimezone()   # §4.1: without :zone, the local zone (``Env.now`` is local already)
        out.append(_date_part(when, test.args[-2].lower()))
    return out


def _date_part(when: datetime, part: str) -> str:
    """RFC 5260 §4.2."""
    offset = when.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    parts = {
        "year": f"{when.year:04d}", "month": f"{when.month:02d}", "day": f"{when.day:02d}",
        "date": f"{when.year:04d}-{when.month:02d}-{when.day:02d}",
        "julian": str(when.date().toordinal() - date(1858, 11, 17).toordinal()),   # Modified Julian Day
        "hour": f"{when.hour:02d}", "minute": f"{when.minute:02d}", "second": f"{when.second:02d}",
        "time": f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}",
        "iso8601": when.replace(microsecond=0).isoformat(), "std11": format_datetime(when),
        "zone": f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}",
        "weekday": str((when.weekday() + 1) % 7),   # 0 is Sunday
    }
    return parts[part]


def _part(address: str, tags: dict) -> str:
    local, _, domain = address.rpartition("@") if "@" in address else (address, "", "")
    if ":localpart" in tags:
        return local
    if ":domain" in tags:
        return domain
    return address


def _match(value: str, key: str, tags: dict) -> bool:
    comparator = tags.get(":comparator", "i;ascii-casemap")
    relation = tags.get(":value") or tags.get(":count")
    if comparator == "i;ascii-numeric":
        return _compare(_numeric(value), _numeric(key), relation or "eq")
    if comparator == "i;ascii-casemap":
        value, key = value.lower(), key.lower()
    if relation:
        return _compare(value, key, relation)
    if ":contains" in tags:
        return key in value
    if ":matches" in tags:
        return fnmatch.fnmatchcase(value, key.replace("[", "[[]"))
    return value == key


def _numeric(text: str) -> float:
    """RFC 4790 §9.1.1 i;ascii-numeric: the leading digits as a number; none is positive infinity."""
    digits = re.match(r"\d*", text).group()
    return int(digits) if digits else float("inf")


def _compare(value, key, relation: str) -> bool:
    """RFC 5231 §4: the value compared with the key."""
    return {"gt": value > key, "ge": value >= key, "lt": value < key, "le": value <= key, "eq": value == key,
            "ne": value != key}[relation.lower()]
