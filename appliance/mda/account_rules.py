"""The account page's rules as data, and the one generator that turns them into Sieve.

A person sets three things on the account page: an out-of-office reply (on/off, from and
until dates, subject, message), forwarding (addresses, keeping a copy or not) and simple
filters ("if From / To / Subject / a header contains … then move to folder / mark read /
forward / discard"). ``AccountRules`` holds them; the store keeps it as JSON beside the
script ``to_sieve`` makes of it, which runs in the account-rules slot ahead of the user's
active script (``rules.RulesCheck``). Nothing else writes that slot's Sieve.

The generated script, in this order:
- filters, in the person's order; a discard ends all rules (``discard; stop;``), so
  discarded mail is neither forwarded nor answered;
- forwarding (RFC 5228 §4.2 redirect; :copy when a copy is kept, RFC 3894);
- the out-of-office (RFC 5230 vacation, with :days when the person chose their own
  interval), inside currentdate tests (RFC 5260 §5 with RFC 5231 :value) for its dates,
  so it starts and stops by itself without a timer.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date

from appliance.mda import sieve
from appliance.store import InvalidName, normalize_address, normalize_mailbox_name

FIELDS = ("from", "to", "subject", "header")          # what a filter looks at
ACTIONS = ("move", "read", "forward", "discard")      # what it does
MAX_FILTERS = 50
MAX_FORWARDS = sieve.MAX_REDIRECTS
MAX_TEXT = 4000            # characters of an out-of-office message
MAX_LINE = 200             # characters of a subject, a folder, a value, a header name
MAX_DAYS = 30              # the longest interval a person may choose between two replies to one sender
_HEADER_NAME = re.compile(r"[!-9;-~]+\Z")   # RFC 5322 §3.6.8 field-name


class RuleError(ValueError):
    """A rule the page cannot save; ``key`` names the account page's text that says what to
    fix, ``name`` the value at fault (shown in that text)."""

    def __init__(self, key: str, name: str = ""):
        super().__init__(f"{key}: {name}" if name else key)
        self.key = key
        self.name = name


@dataclass(frozen=True)
class OutOfOffice:
    on: bool = False
    start: str = ""      # first day of replies, YYYY-MM-DD ("" from now on)
    end: str = ""        # last day of replies, YYYY-MM-DD ("" until turned off)
    subject: str = ""    # "" lets the MDA write "Auto: <their subject>"
    message: str = ""
    days: int = 0        # days between two replies to one sender (RFC 5230 :days); 0: the server's [mda] vacation_days


@dataclass(frozen=True)
class Forwarding:
    addresses: tuple[str, ...] = ()   # normalized; none means no forwarding
    keep: bool = True                 # keep a copy here too


@dataclass(frozen=True)
class FilterRule:
    field: str           # one of FIELDS
    value: str           # what the field contains (case-insensitive)
    action: str          # one of ACTIONS
    header: str = ""     # the header's name when field is "header"
    target: str = ""     # the folder (move) or the address (forward)


@dataclass(frozen=True)
class AccountRules:
    out_of_office: OutOfOffice = field(default_factory=OutOfOffice)
    forwarding: Forwarding = field(default_factory=Forwarding)
    filters: tuple[FilterRule, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "AccountRules":
        """The saved rules ("" is none saved yet)."""
        if not text:
            return cls()
        data = json.loads(text)
        forwarding = data.get("forwarding", {})
        return cls(OutOfOffice(**data.get("out_of_office", {})),
                   Forwarding(tuple(forwarding.get("addresses", ())), forwarding.get("keep", True)),
                   tuple(FilterRule(**f) for f in data.get("filters", ())))


# -- checking what the page was given ----------------------------------------------------------

def _text(value: str, key: str, limit: int = MAX_LINE) -> str:
    value = " ".join(value.split())
    if len(value) > limit:
        raise RuleError(key, value[:40])
    return value


def _day(value: str) -> str:
    value = value.strip()
    if value:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise RuleError("bad_date", value) from None
    return value


def _days(value: str, server_days: int) -> int:
    """The reply interval from the form: 0 (follow the server's) when empty or the server's
    own, which the form shows until the person changes it."""
    value = value.strip()
    if not value:
        return 0
    try:
        days = int(value)
    except ValueError:
        raise RuleError("bad_days", str(MAX_DAYS)) from None
    if days == server_days:
        return 0
    if not 1 <= days <= MAX_DAYS:
        raise RuleError("bad_days", str(MAX_DAYS))
    return days


def check_out_of_office(on: bool, start: str, end: str, subject: str, message: str, days: str = "",
                        server_days: int = 0) -> OutOfOffice:
    """The out-of-office from the form's fields; ``server_days`` is ``[mda] vacation_days``.
    Raises RuleError."""
    start, end = _day(start), _day(end)
    if start and end and end < start:
        raise RuleError("end_before_start")
    message = message.replace("\r\n", "\n").strip()
    if len(message) > MAX_TEXT:
        raise RuleError("too_long", message[:40])
    if on and not message:
        raise RuleError("no_message")
    return OutOfOffice(on, start, end, _text(subject, "too_long"), message, _days(days, server_days))


def check_address(store, user_address: str, address: str) -> str:
    """A forwarding target, normalized: a mail address, not the person's own, and at a local
    domain only an address that exists (RFC 5228 §4.2: redirect to an address). Raises
    RuleError."""
    try:
        # Lower case, as the interpreter's redirect keeps it (sieve.Actions.redirects).
        normalized = normalize_address(address).lower()
    except InvalidName:
        raise RuleError("bad_address", address) from None
    own = normalize_address(user_address).lower()
    if normalized == own:
        raise RuleError("own_address", address)
    if store.is_local_domain(normalized.rpartition("@")[2]):
        found = store.resolve(normalized)
        if found is None:
            raise RuleError("no_such_user", address)
        if not found.external and {u.address.lower() for u in found.users} == {own}:
            raise RuleError("own_address", address)   # an alias of one's own
    return normalized


def check_forwarding(store, user_address: str, addresses: str, keep: bool) -> Forwarding:
    """Forwarding from the form: addresses separated by commas, spaces or lines. Raises RuleError."""
    found: list[str] = []
    for address in re.split(r"[\s,;]+", addresses.strip()):
        if address:
            normalized = check_address(store, user_address, address)
            if normalized not in found:
                found.append(normalized)
    if len(found) > MAX_FORWARDS:
        raise RuleError("too_many_forwards", str(MAX_FORWARDS))
    return Forwarding(tuple(found), keep)


def check_filter(store, user_address: str, field_: str, header: str, value: str, action: str,
                 target: str) -> FilterRule:
    """One filter from the form. Raises RuleError."""
    if field_ not in FIELDS or action not in ACTIONS:
        raise RuleError("bad_rule")
    value = _text(value, "too_long")
    if not value:
        raise RuleError("no_value")
    header = header.strip() if field_ == "header" else ""
    if field_ == "header" and not _HEADER_NAME.match(header):
        raise RuleError("bad_header", header)
    target = target.strip()
    if action == "move":
        try:
            target = normalize_mailbox_name(_text(target, "too_long"))
        except InvalidName:
            raise RuleError("bad_folder", target) from None
    elif action == "forward":
        target = check_address(store, user_address, target)
    else:
        target = ""
    return FilterRule(field_, value, action, header, target)


# -- the generator -----------------------------------------------------------------------------

def _quote(text: str) -> str:
    """A Sieve quoted string (RFC 5228 §2.4.2: backslash escapes backslash and quote)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _condition(rule: FilterRule) -> str:
    # The decoded field, so a From or To filter finds the display name as well as the address.
    name = rule.header if rule.field == "header" else rule.field
    return f"header :contains {_quote(name)} {_quote(rule.value)}"


def _action(rule: FilterRule) -> str:
    if rule.action == "move":
        return f"fileinto :create {_quote(rule.target)};"
    if rule.action == "read":
        return 'addflag "\\\\Seen";'
    if rule.action == "forward":
        return f"redirect :copy {_quote(rule.target)};"
    return "discard;\n    stop;"


def to_sieve(rules: AccountRules) -> str:
    """The account-rules script for ``rules`` ("" when nothing is on). It always parses
    with ``sieve.parse``."""
    body: list[str] = []
    needs: set[str] = set()
    for rule in rules.filters:
        body.append(f"if {_condition(rule)} {{\n    {_action(rule)}\n}}")
        needs |= {"move": {"fileinto", "mailbox"}, "read": {"imap4flags"}, "forward": {"copy"}}.get(rule.action, set())
    forwarding = rules.forwarding
    for address in forwarding.addresses:
        body.append(f"redirect{' :copy' if forwarding.keep else ''} {_quote(address)};")
    if forwarding.addresses and forwarding.keep:
        needs.add("copy")
    away = rules.out_of_office
    if away.on and away.message:
        needs.add("vacation")
        days = f":days {away.days} " if away.days else ""
        subject = f":subject {_quote(away.subject)} " if away.subject else ""
        vacation = f"vacation {days}{subject}{_quote(away.message)};"
        dates = [f'currentdate :value "{relation}" "date" {_quote(day)}'
                 for relation, day in (("ge", away.start), ("le", away.end)) if day]
        if dates:
            needs |= {"date", "relational"}
            test = dates[0] if len(dates) == 1 else f"allof ({', '.join(dates)})"
            body.append(f"if {test} {{\n    {vacation}\n}}")
        else:
            body.append(vacation)
    if not body:
        return ""
    head = ["# Written by the account page: out of office, forwarding and filters."]
    if needs:
        head.append(f"require [{', '.join(_quote(n) for n in sorted(needs))}];")
    return "\n".join(head + body) + "\n"
