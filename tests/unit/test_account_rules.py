"""The account page's rules: the generated Sieve (it parses, and does what the page says when
run), the checks on what the page is given, and the date and relational tests it relies on."""

from datetime import datetime, timedelta, timezone

import threading

import pytest

from appliance.mda import sieve
from appliance.mda.account_rules import (AccountRules, FilterRule, Forwarding, OutOfOffice, RuleError,
                                         check_filter, check_forwarding, check_out_of_office, to_sieve)
from appliance.store import Store
from appliance.web import rules_panels
from tests.mda_helpers import incoming, plain, wire

JAKARTA = timezone(timedelta(hours=7))
EVERYTHING = AccountRules(
    OutOfOffice(True, "2026-12-01", "2026-12-10", 'Away "for now"', "Back on Monday.\nRina \\ Sales"),
    Forwarding(("bob@example.org", "rina@elsewhere.test"), keep=False),
    (FilterRule("subject", "invoice", "move", target="Invoices"), FilterRule("from", "Boss", "read"),
     FilterRule("header", "news.remote.test", "discard", header="List-Id"),
     FilterRule("to", "sales@", "forward", target="carol@example.org")))


def run(rules: AccountRules, now=datetime(2026, 12, 5, 9, tzinfo=JAKARTA), **kw) -> sieve.Actions:
    msg = incoming(wire(plain(**kw)))
    env = sieve.Env(header=msg.header, addresses=msg.addresses, envelope_from="bob@remote.test",
                    envelope_to="alice@example.org", size=len(msg.raw), now=lambda: now)
    return sieve.run(sieve.parse(to_sieve(rules)), env)


def test_nothing_on_is_no_script():
    assert to_sieve(AccountRules()) == ""
    assert to_sieve(AccountRules(OutOfOffice(False, "", "", "Away", "Gone."))) == ""


def test_every_rule_makes_a_script_that_parses_and_survives_json():
    script = to_sieve(EVERYTHING)
    sieve.parse(script)
    assert script.splitlines()[1] == ('require ["copy", "date", "fileinto", "imap4flags", "mailbox", "relational",'
                                      ' "vacation"];')
    assert AccountRules.from_json(EVERYTHING.to_json()) == EVERYTHING
    assert AccountRules.from_json("") == AccountRules()


def test_quotes_backslashes_and_lines_survive_into_the_reply():
    a = run(EVERYTHING, subject="hello")
    assert a.vacation == {"reason": "Back on Monday.\nRina \\ Sales", "subject": 'Away "for now"'}


def test_the_persons_reply_interval_goes_into_vacation_days():
    own = AccountRules(OutOfOffice(True, "", "", "", "Away.", days=3))
    assert "vacation :days 3 \"Away.\";" in to_sieve(own)
    assert run(own).vacation == {"reason": "Away.", "days": 3}
    assert ":days" not in to_sieve(AccountRules(OutOfOffice(True, "", "", "", "Away.")))   # the server's


@pytest.mark.parametrize("days, server_days, saved", [
    ("", 7, 0), ("7", 7, 0), ("1", 7, 1), ("30", 7, 30), (" 14 ", 7, 14), ("45", 45, 0),
])
def test_the_reply_interval_is_the_servers_until_the_person_chooses(days, server_days, saved):
    assert check_out_of_office(True, "", "", "", "Away.", days, server_days).days == saved


@pytest.mark.parametrize("days", ["0", "31", "-3", "seven", "2.5"])
def test_a_reply_interval_outside_1_to_30_days_is_refused(days):
    with pytest.raises(RuleError) as e:
        check_out_of_office(True, "", "", "", "Away.", days, 7)
    assert (e.value.key, e.value.name) == ("bad_days", "30")


@pytest.mark.parametrize("now, replies", [
    (datetime(2026, 11, 30, 23, 59, tzinfo=JAKARTA), False),
    (datetime(2026, 12, 1, 0, 0, tzinfo=JAKARTA), True),
    (datetime(2026, 12, 10, 23, 59, tzinfo=JAKARTA), True),
    (datetime(2026, 12, 11, 0, 0, tzinfo=JAKARTA), False),
])
def test_the_out_of_office_starts_and_stops_by_the_dates(now, replies):
    rules = AccountRules(OutOfOffice(True, "2026-12-01", "2026-12-10", "", "Away."))
    assert (run(rules, now=now).vacation is not None) is replies


def test_one_date_or_none():
    only_until = AccountRules(OutOfOffice(True, "", "2026-12-10", "", "Away."))
    assert run(only_until, now=datetime(2020, 1, 1, tzinfo=JAKARTA)).vacation is not None
    assert run(only_until, now=datetime(2027, 1, 1, tzinfo=JAKARTA)).vacation is None
    always = AccountRules(OutOfOffice(True, "", "", "", "Away."))
    assert "currentdate" not in to_sieve(always) and run(always).vacation == {"reason": "Away."}


def test_filters_act_as_the_page_says():
    assert run(EVERYTHING, subject="Invoice 42").folders == ["Invoices"]
    assert run(EVERYTHING, sender="The Boss <boss@remote.test>").flags == {"\\Seen"}
    news = run(EVERYTHING, headers={"List-Id": "<news.remote.test>"})
    assert news.discarded and news.vacation is None and news.redirects == []   # a discard ends all rules
    sales = run(EVERYTHING, to="sales@example.org")
    assert sales.redirects == ["carol@example.org", "bob@example.org", "rina@elsewhere.test"]


def test_forwarding_with_and_without_a_copy():
    kept = run(AccountRules(forwarding=Forwarding(("bob@example.org",), keep=True)))
    assert kept.redirects == ["bob@example.org"] and kept.keep
    gone = run(AccountRules(forwarding=Forwarding(("bob@example.org",), keep=False)))
    assert gone.redirects == ["bob@example.org"] and not gone.keep


# -- checks -----------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    s = Store.in_folder(tmp_path)
    s.add_domain("example.org")
    s.add_user("alice@example.org", "pw")
    s.add_user("bob@example.org", "pw")
    s.add_alias("me@example.org", ["alice@example.org"])
    yield s
    s.close()


@pytest.mark.parametrize("addresses, key", [
    ("not an address", "bad_address"), ("alice@example.org", "own_address"), ("ALICE@Example.org", "own_address"),
    ("me@example.org", "own_address"), ("nobody@example.org", "no_such_user"),
    (" ".join(f"x{i}@elsewhere.test" for i in range(6)), "too_many_forwards"),
])
def test_forwarding_addresses_are_checked(store, addresses, key):
    with pytest.raises(RuleError) as e:
        check_forwarding(store, "alice@example.org", addresses, True)
    assert e.value.key == key


def test_forwarding_addresses_are_normalized_once_each(store):
    got = check_forwarding(store, "alice@example.org", "Bob@EXAMPLE.org,\nrina@Elsewhere.test bob@example.org", False)
    assert got == Forwarding(("bob@example.org", "rina@elsewhere.test"), False)


@pytest.mark.parametrize("fields, key", [
    (("on", "2026-12-32", "", "", "x"), "bad_date"),
    (("on", "2026-12-10", "2026-12-01", "", "x"), "end_before_start"),
    (("on", "", "", "", "  "), "no_message"),
    (("on", "", "", "", "x" * 5000), "too_long"),
])
def test_out_of_office_fields_are_checked(fields, key):
    with pytest.raises(RuleError) as e:
        check_out_of_office(fields[0] == "on", *fields[1:])
    assert e.value.key == key


@pytest.mark.parametrize("fields, key", [
    (("subject", "", "", "move", "Invoices"), "no_value"),
    (("body", "", "x", "move", "Invoices"), "bad_rule"),
    (("subject", "", "x", "explode", ""), "bad_rule"),
    (("header", "List Id", "x", "read", ""), "bad_header"),
    (("subject", "", "x", "move", ""), "bad_folder"),
    (("subject", "", "x", "forward", "nobody@example.org"), "no_such_user"),
])
def test_filters_are_checked(store, fields, key):
    with pytest.raises(RuleError) as e:
        check_filter(store, "alice@example.org", *fields)
    assert e.value.key == key


def test_the_store_keeps_the_rules_beside_their_script(store):
    user = store.get_user("alice@example.org")
    rules = AccountRules(OutOfOffice(False, "", "", "Away", "Gone."))
    store.set_account_rules(user.id, to_sieve(rules), rules.to_json())
    assert store.delivery_scripts(user.id) == ("", "")    # all off: nothing runs...
    assert AccountRules.from_json(store.account_rules_model(user.id)) == rules   # ...and the page still shows it


# -- RFC 5260 date / currentdate and RFC 5231 relational ---------------------------------------------

def env_at(now, **headers):
    msg = incoming(wire(plain(headers=headers)))
    return sieve.Env(header=msg.header, addresses=msg.addresses, envelope_from="", envelope_to="", size=0,
                     now=lambda: now)


@pytest.mark.parametrize("test, expected", [
    ('currentdate "date" "2026-12-06"', True),
    ('currentdate :zone "+0000" "hour" "05"', True),
    ('currentdate "weekday" "0"', True),          # a Sunday
    ('currentdate "julian" "61380"', True),
    ('currentdate "zone" "+0700"', True),
    ('currentdate :value "gt" "date" "2026-12-06"', False),
    ('date :zone "+0000" "x-sent" "time" "03:04:05"', True),
    ('date :originalzone "x-sent" "zone" "+0700"', True),
    ('date "x-missing" "year" "2026"', False),
    ('header :count "eq" :comparator "i;ascii-numeric" "subject" "1"', True),
    ('header :value "lt" :comparator "i;ascii-numeric" "x-score" "10"', True),   # 9 < 10 as numbers
    ('header :value "lt" "x-score" "10"', False),                                # "9" > "10" as text
])
def test_date_and_relational_tests(test, expected):
    script = f'require ["date", "relational", "fileinto"];\nif {test} {{ fileinto "Hit"; }}'
    now = datetime(2026, 12, 6, 12, 0, 0, tzinfo=JAKARTA)
    env = env_at(now, **{"X-Sent": "Sun, 06 Dec 2026 10:04:05 +0700", "X-Score": "9"})
    assert (sieve.run(sieve.parse(script), env).folders == ["Hit"]) is expected


@pytest.mark.parametrize("script, error", [
    ('if currentdate "date" "x" { keep; }', "line 1: 'currentdate' needs require \"date\""),
    ('require "date";\nif currentdate "dat" "x" { keep; }', 'line 2: unknown date part "dat"'),
    ('require "date";\nif currentdate :zone "7" "date" "x" { keep; }', 'line 2: :zone takes an offset like "+0700"'),
    ('require "date";\nif currentdate :value "ge" "date" "x" { keep; }', 'line 2: :value needs require "relational"'),
    ('require "relational";\nif header :value "gx" "a" "b" { keep; }', "line 2: :value takes one of"),
    ('require ["date"];\nif date "date" "x" { keep; }', "line 2: 'date' takes a header name, a date part"),
    ('if header :contains :comparator "i;ascii-numeric" "x" "1" { keep; }', "line 1: i;ascii-numeric compares"),
])
def test_date_and_relational_errors_name_the_line(script, error):
    with pytest.raises(sieve.SieveError) as e:
        sieve.parse(script)
    assert str(e.value).startswith(error)


# -- the panels change the saved rules inside one store write ---------------------------------

FORM_FILTER = {"field": "subject", "header": "", "action": "move"}


def test_panels_saved_at_the_same_moment_keep_each_others_changes(store):
    user = store.get_user("alice@example.org")
    forms = [(rules_panels.add_filter, {**FORM_FILTER, "value": f"report {i}", "target": f"Reports {i}"})
             for i in range(12)]
    forms += [(rules_panels.out_of_office, {"on": "on", "message": "Away.", "days": "3"})] * 6
    forms += [(rules_panels.forwarding, {"addresses": "bob@example.org", "keep": "on"})] * 6
    start = threading.Barrier(len(forms))

    def save(apply, form):
        change = apply(store, user, form, 7)
        start.wait()
        rules_panels.save(store, user.id, change)

    threads = [threading.Thread(target=save, args=f) for f in forms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rules = rules_panels.saved(store, user.id)
    assert sorted(r.value for r in rules.filters) == sorted(f"report {i}" for i in range(12))
    assert rules.out_of_office == OutOfOffice(True, "", "", "", "Away.", 3)
    assert rules.forwarding == Forwarding(("bob@example.org",), True)
    assert store.get_account_rules(user.id) == to_sieve(rules)


def test_a_filter_form_made_before_another_tab_changed_its_filter_is_refused(store):
    user = store.get_user("alice@example.org")
    for value in ("invoice", "casino"):
        rules_panels.save(store, user.id, rules_panels.add_filter(store, user, {**FORM_FILTER, "value": value,
                                                                                "target": "X"}, 7))
    before = rules_panels.saved(store, user.id)
    keys = [rules_panels.rule_key(r) for r in before.filters]
    # Another tab removes "invoice": this tab's form for "casino" (index 1) still finds it.
    rules_panels.save(store, user.id, rules_panels.delete_filter(store, user, {"index": "0", "key": keys[0]}, 7))
    moved = {**FORM_FILTER, "index": "1", "key": keys[1], "value": "casino", "action": "discard", "target": ""}
    rules_panels.save(store, user.id, rules_panels.edit_filter(store, user, moved, 7))
    assert rules_panels.saved(store, user.id).filters == (FilterRule("subject", "casino", "discard"),)
    # Its old form for "casino" (as it was before the edit) and for the removed rule change nothing.
    for apply, form in [(rules_panels.delete_filter, {"index": "1", "key": keys[1]}),
                        (rules_panels.move_filter, {"index": "0", "key": keys[0], "direction": "down"}),
                        (rules_panels.edit_filter, {**moved, "key": keys[0], "index": "0"})]:
        with pytest.raises(RuleError) as e:
            rules_panels.save(store, user.id, apply(store, user, form, 7))
        assert e.value.key == "changed_elsewhere"
    assert rules_panels.saved(store, user.id).filters == (FilterRule("subject", "casino", "discard"),)


def test_moving_a_filter_changes_what_happens(store):
    user = store.get_user("alice@example.org")
    for form in ({**FORM_FILTER, "value": "invoice", "action": "discard", "target": ""},
                 {**FORM_FILTER, "field": "from", "value": "boss", "target": "Boss"}):
        rules_panels.save(store, user.id, rules_panels.add_filter(store, user, form, 7))
    invoice = {"subject": "Invoice 7", "sender": "The Boss <boss@remote.test>"}
    assert run(rules_panels.saved(store, user.id), **invoice).discarded
    key = rules_panels.rule_key(rules_panels.saved(store, user.id).filters[1])
    rules_panels.save(store, user.id, rules_panels.move_filter(store, user, {"index": "1", "key": key,
                                                                            "direction": "up"}, 7))
    assert run(rules_panels.saved(store, user.id), **invoice).folders == ["Boss"]
    with pytest.raises(RuleError):   # the first cannot go further up
        rules_panels.save(store, user.id, rules_panels.move_filter(store, user, {"index": "0", "key": key,
                                                                                "direction": "up"}, 7))
