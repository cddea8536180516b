"""The Filters screen's Rules tab over a live server: every script of a user, as ManageSieve
stored them and as `kotakpos rules ADDRESS list` names them, and the text of each."""

from __future__ import annotations

from click.testing import CliRunner
from textual.widgets import DataTable, TextArea

from appliance.cli import main
from appliance.managesieve import replies as R
from tests.conftest import PASSWORD
from tests.protocol.managesieve_wire import SieveWire
from tests.tui.conftest import wait_for

SARA = "sara@example.org"
AWAY = 'require "vacation";\r\nvacation :days 3 "Sara is away this week.";\r\n'
OFFICE = 'require "fileinto";\r\nif header :contains "subject" "invoice" {\r\n  fileinto "Bills";\r\n}\r\n'


def rows(table: DataTable) -> list[tuple[str, ...]]:
    return [tuple(table.get_row(row.key)[:2]) for row in table.ordered_rows]


async def test_every_script_of_a_user_is_listed_in_run_order_and_shown(tui_app, office):
    user = office.store.get_user(SARA) or office.add_user(SARA)
    office.store.set_account_rules(user.id, AWAY)
    if office.store.get_mailbox(user.id, "Bills") is None:
        office.store.create_mailbox(user.id, "Bills")
    sieve = SieveWire.logged_in(office, SARA, PASSWORD)
    sieve.transact('PUTSCRIPT "office" {%d+}\r\n%s' % (len(OFFICE.encode()), OFFICE), R.OK_STORED)
    sieve.transact('PUTSCRIPT "spare" "keep;"', R.OK_STORED)
    sieve.transact('SETACTIVE "office"', R.OK_ACTIVATED)
    listed = CliRunner().invoke(main, ["rules", SARA, "list", "--data", str(office.data_dir)]).output.splitlines()
    assert [line.split()[:2] for line in listed] == [["+", "(account"], ["*", "office"], ["spare", "5"]]

    async with tui_app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tui_app.connected, what="the link")
        await pilot.press("6", "t", "t")
        users = tui_app.screen.query_one("#rule-users", DataTable)
        await wait_for(pilot, lambda: SARA in [r.key.value for r in users.ordered_rows], what="the user")
        users.move_cursor(row=users.get_row_index(SARA))
        scripts = tui_app.screen.query_one("#rule-scripts", DataTable)
        # the same scripts, in the same order, as kotakpos rules list
        expected = [("(account rules)", "first"), ("office", "active"), ("spare", "-")]
        await wait_for(pilot, lambda: rows(scripts) == expected, what=lambda: f"the scripts, not {rows(scripts)}")
        text = tui_app.screen.query_one("#rules-script", TextArea)
        # the cursor starts on the active script
        await wait_for(pilot, lambda: text.text == OFFICE,
                       what=lambda: f"the active script, not {text.text!r}")
        assert text.border_title == f"Script 'office' of {SARA}"
        scripts.move_cursor(row=0)
        await wait_for(pilot, lambda: "Sara is away this week." in text.text, what="the account rules")
        assert text.border_title == f"The account rules of {SARA}"
        scripts.move_cursor(row=2)
        await wait_for(pilot, lambda: text.text == "keep;", what="the spare script")

        # Another script activated over ManageSieve shows after a refresh.
        sieve.transact('SETACTIVE "spare"', R.OK_ACTIVATED)
        await pilot.press("g")
        await wait_for(pilot, lambda: rows(scripts)[1:] == [("office", "-"), ("spare", "active")],
                       what=lambda: f"the new active script, not {rows(scripts)}")
