"""The account page's Out of office, Forwarding and Filters panels.

Each form changes the person's ``mda.account_rules.AccountRules``; the store keeps it
together with the Sieve ``account_rules.to_sieve`` makes of it, in one transaction
(``store.set_account_rules``). ``FORMS`` names each form's path and the function that
applies it: ``apply(store, user, form)`` returns the changed rules and what to log (no
message text, no secret), or raises ``account_rules.RuleError``. ``account.py`` wires them
through its ``checked()`` like every other form.

    POST /account/out-of-office     on, start, end, subject, message
    POST /account/forwarding        addresses, keep
    POST /account/filters           field, header, value, action, target: adds a filter
    POST /account/filters/delete    index
"""

from __future__ import annotations

from dataclasses import replace

from appliance.mda import account_rules
from appliance.mda.account_rules import AccountRules, RuleError
from appliance.store import User


def saved(store, user_id: int) -> AccountRules:
    return AccountRules.from_json(store.account_rules_model(user_id))


def save(store, user_id: int, rules: AccountRules) -> None:
    store.set_account_rules(user_id, account_rules.to_sieve(rules), rules.to_json())


def panel_data(store, user_id: int) -> dict:
    """What the three panels show: the rules as saved, the folders to choose from and the
    script a mail program made active (it runs after these rules)."""
    rules = saved(store, user_id)
    active = next((s.name for s in store.list_sieve_scripts(user_id) if s.active), "")
    return {"away": rules.out_of_office, "forwarding": rules.forwarding, "filters": rules.filters,
            "folder_names": [m.name for m in store.list_mailboxes(user_id)], "active_script": active}


def out_of_office(store, user: User, form: dict) -> tuple[AccountRules, str]:
    rules = saved(store, user.id)
    away = account_rules.check_out_of_office(form.get("on") == "on", form.get("start", ""), form.get("end", ""),
                                             form.get("subject", ""), form.get("message", ""))
    when = f" from {away.start or 'now'} until {away.end or 'turned off'}" if away.on else ""
    return replace(rules, out_of_office=away), f"turned the out-of-office {'on' if away.on else 'off'}{when}"


def forwarding(store, user: User, form: dict) -> tuple[AccountRules, str]:
    rules = saved(store, user.id)
    forward = account_rules.check_forwarding(store, user.address, form.get("addresses", ""), form.get("keep") == "on")
    what = (f"set forwarding to {', '.join(forward.addresses)} ({'keeping' if forward.keep else 'without'} a copy)"
            if forward.addresses else "turned forwarding off")
    return replace(rules, forwarding=forward), what


def add_filter(store, user: User, form: dict) -> tuple[AccountRules, str]:
    rules = saved(store, user.id)
    if len(rules.filters) >= account_rules.MAX_FILTERS:
        raise RuleError("too_many_filters", str(account_rules.MAX_FILTERS))
    rule = account_rules.check_filter(store, user.address, form.get("field", ""), form.get("header", ""),
                                      form.get("value", ""), form.get("action", ""), form.get("target", ""))
    looked_at = rule.header if rule.field == "header" else rule.field
    return (replace(rules, filters=(*rules.filters, rule)),
            f"added filter {len(rules.filters) + 1}: {looked_at} contains {rule.value!r} then {rule.action}"
            f"{' ' + rule.target if rule.target else ''}")


def delete_filter(store, user: User, form: dict) -> tuple[AccountRules, str]:
    rules = saved(store, user.id)
    try:
        index = int(form.get("index", ""))
    except ValueError:
        raise RuleError("bad_rule") from None
    if not 0 <= index < len(rules.filters):
        raise RuleError("bad_rule")
    return (replace(rules, filters=rules.filters[:index] + rules.filters[index + 1:]),
            f"removed filter {index + 1}")


# path -> (apply, the notice shown when it worked)
FORMS = {
    "/account/out-of-office": (out_of_office, "ooo_saved"),
    "/account/forwarding": (forwarding, "fwd_saved"),
    "/account/filters": (add_filter, "flt_added"),
    "/account/filters/delete": (delete_filter, "flt_deleted"),
}
