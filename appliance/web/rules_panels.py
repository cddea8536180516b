"""The account page's Out of office, Forwarding and Filters panels.

Each form changes the person's ``mda.account_rules.AccountRules``. ``FORMS`` names each
form's path and the function that reads it: ``apply(store, user, form, server_days)``
checks the form (raising ``account_rules.RuleError``) and returns a change, a function
from the saved rules to the new rules and what to log (no message text, no secret).
``save`` runs that change inside the store's write (``store.update_account_rules``), so a
form saved in one tab never undoes what another tab saved meanwhile: each panel changes
only its own part of the rules as they are at that moment. A filter form names its filter
by place and content (``rule_key``); when another tab changed or removed that filter, the
form is refused with "changed elsewhere" rather than changing a different one.
``account.py`` wires the forms through its ``checked()`` like every other form.

    POST /account/out-of-office     on, start, end, subject, message, days
    POST /account/forwarding        addresses, keep
    POST /account/filters           field, header, value, action, target: adds a filter
    POST /account/filters/edit      index, key, field, header, value, action, target
    POST /account/filters/move      index, key, direction (up | down)
    POST /account/filters/delete    index, key
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, replace
from typing import Callable

from appliance.mda import account_rules
from appliance.mda.account_rules import AccountRules, FilterRule, RuleError
from appliance.store import User

Change = Callable[[AccountRules], tuple[AccountRules, str]]


def saved(store, user_id: int) -> AccountRules:
    return AccountRules.from_json(store.account_rules_model(user_id))


def save(store, user_id: int, change: Change) -> str:
    """Apply ``change`` to the rules as saved and store the result with its Sieve, in one
    transaction; returns what to log. Raises RuleError (nothing saved)."""
    said: list[str] = []

    def update(model: str) -> tuple[str, str]:
        rules, what = change(AccountRules.from_json(model))
        said.append(what)
        return account_rules.to_sieve(rules), rules.to_json()

    store.update_account_rules(user_id, update)
    return said[-1]


def rule_key(rule: FilterRule) -> str:
    """A short name for a filter's content, which its edit, move and remove forms carry."""
    return hashlib.sha256(repr(sorted(asdict(rule).items())).encode()).hexdigest()[:16]


def panel_data(store, user_id: int, server_days: int) -> dict:
    """What the three panels show: the rules as saved, the folders to choose from, the
    script a mail program made active (it runs after these rules) and the server's reply
    interval."""
    rules = saved(store, user_id)
    active = next((s.name for s in store.list_sieve_scripts(user_id) if s.active), "")
    return {"away": rules.out_of_office, "forwarding": rules.forwarding, "filters": rules.filters,
            "filter_keys": [rule_key(r) for r in rules.filters], "server_days": server_days,
            "max_days": account_rules.MAX_DAYS,
            "folder_names": [m.name for m in store.list_mailboxes(user_id)], "active_script": active}


def out_of_office(store, user: User, form: dict, server_days: int) -> Change:
    away = account_rules.check_out_of_office(form.get("on") == "on", form.get("start", ""), form.get("end", ""),
                                             form.get("subject", ""), form.get("message", ""),
                                             form.get("days", ""), server_days)
    when = f" from {away.start or 'now'} until {away.end or 'turned off'}" if away.on else ""
    every = f", once per sender every {away.days} days" if away.on and away.days else ""
    return lambda rules: (replace(rules, out_of_office=away),
                          f"turned the out-of-office {'on' if away.on else 'off'}{when}{every}")


def forwarding(store, user: User, form: dict, server_days: int) -> Change:
    forward = account_rules.check_forwarding(store, user.address, form.get("addresses", ""), form.get("keep") == "on")
    what = (f"set forwarding to {', '.join(forward.addresses)} ({'keeping' if forward.keep else 'without'} a copy)"
            if forward.addresses else "turned forwarding off")
    return lambda rules: (replace(rules, forwarding=forward), what)


def _rule_from(store, user: User, form: dict) -> FilterRule:
    return account_rules.check_filter(store, user.address, form.get("field", ""), form.get("header", ""),
                                      form.get("value", ""), form.get("action", ""), form.get("target", ""))


def _describe(rule: FilterRule) -> str:
    looked_at = rule.header if rule.field == "header" else rule.field
    return f"{looked_at} contains {rule.value!r} then {rule.action}{' ' + rule.target if rule.target else ''}"


def _find(rules: AccountRules, form: dict) -> int:
    """Where the filter a form was made for is now: at the form's index if unchanged there,
    else wherever another tab moved it. Raises RuleError when it was changed or removed."""
    keys = [rule_key(r) for r in rules.filters]
    wanted = form.get("key", "")
    index = form.get("index", "")
    if index.isdigit() and int(index) < len(keys) and keys[int(index)] == wanted:
        return int(index)
    if keys.count(wanted) == 1:
        return keys.index(wanted)
    raise RuleError("changed_elsewhere")


def add_filter(store, user: User, form: dict, server_days: int) -> Change:
    rule = _rule_from(store, user, form)

    def change(rules: AccountRules) -> tuple[AccountRules, str]:
        if len(rules.filters) >= account_rules.MAX_FILTERS:
            raise RuleError("too_many_filters", str(account_rules.MAX_FILTERS))
        return (replace(rules, filters=(*rules.filters, rule)),
                f"added filter {len(rules.filters) + 1}: {_describe(rule)}")
    return change


def edit_filter(store, user: User, form: dict, server_days: int) -> Change:
    rule = _rule_from(store, user, form)

    def change(rules: AccountRules) -> tuple[AccountRules, str]:
        index = _find(rules, form)
        filters = list(rules.filters)
        filters[index] = rule
        return replace(rules, filters=tuple(filters)), f"changed filter {index + 1}: {_describe(rule)}"
    return change


def move_filter(store, user: User, form: dict, server_days: int) -> Change:
    step = {"up": -1, "down": 1}.get(form.get("direction", ""))
    if step is None:
        raise RuleError("bad_rule")

    def change(rules: AccountRules) -> tuple[AccountRules, str]:
        index = _find(rules, form)
        other = index + step
        if not 0 <= other < len(rules.filters):
            raise RuleError("changed_elsewhere")   # the page showed no such button
        filters = list(rules.filters)
        filters[index], filters[other] = filters[other], filters[index]
        return replace(rules, filters=tuple(filters)), f"moved filter {index + 1} to place {other + 1}"
    return change


def delete_filter(store, user: User, form: dict, server_days: int) -> Change:
    def change(rules: AccountRules) -> tuple[AccountRules, str]:
        index = _find(rules, form)
        return replace(rules, filters=rules.filters[:index] + rules.filters[index + 1:]), f"removed filter {index + 1}"
    return change


# path -> (apply, the notice shown when it worked)
FORMS = {
    "/account/out-of-office": (out_of_office, "ooo_saved"),
    "/account/forwarding": (forwarding, "fwd_saved"),
    "/account/filters": (add_filter, "flt_added"),
    "/account/filters/edit": (edit_filter, "flt_changed"),
    "/account/filters/move": (move_filter, "flt_moved"),
    "/account/filters/delete": (delete_filter, "flt_deleted"),
}
