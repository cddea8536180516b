"""Snapshots of every screen at 80x24 (an SSH session) and 120x40, from fixed data.

The data and the clock come from fake_admin, with the time zone set to UTC, so times
render the same everywhere. After a deliberate change to a screen, look at the report
and refresh with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import os
import time

import pytest

from appliance.tui.app import KotakposApp
from tests.tui.conftest import wait_for
from tests.tui.fake_admin import NOW, FakeAdmin

SIZES = [(80, 24), (120, 40)]

# screen -> the keys that show it with something worth seeing; each at both sizes
SCREENS = {
    "dashboard": ["1"],
    "sessions": ["2", "down", "f"],          # following the second session
    "queue": ["3"],
    "mailboxes": ["4"],
    "accounts": ["5"],
    "filters": ["6"],
    "log": ["7"],
}
# further views, at 80x24 only (the tightest fit)
VIEWS = {
    "add-user-form": ["5", "a", *"anna", "ctrl+s"],   # the form explaining what is wrong
    "queue-entry": ["3", "i"],
    "filter-rules": ["6", "t", "t"],
    "filter-rules-account": ["6", "t", "t", "tab", "up"],   # the account rules' text
    "filter-receipts": ["6", "t", "t", "t"],
}


@pytest.fixture(autouse=True)
def utc():
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


async def settle(pilot) -> None:
    """Wait until no admin call is running and their replies have been shown."""
    quiet = 0
    while quiet < 3:
        await pilot.pause(0.05)
        busy = any(w.is_running and w.group != "link" for w in pilot.app.workers)
        quiet = 0 if busy else quiet + 1


def shows(keys: list[str]):
    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: pilot.app.connected, what="the fake link")
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
    return run_before


def fixed_app() -> KotakposApp:
    return KotakposApp(lambda: FakeAdmin(), where="snapshot", now=lambda: NOW)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(snap_compare, screen, size):
    assert snap_compare(fixed_app(), terminal_size=size, run_before=shows(SCREENS[screen]))


@pytest.mark.parametrize("view", list(VIEWS))
def test_view(snap_compare, view):
    assert snap_compare(fixed_app(), terminal_size=(80, 24), run_before=shows(VIEWS[view]))
