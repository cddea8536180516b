"""The TUI's view models: formatting and counting, without a terminal."""

from __future__ import annotations

import time

import pytest

from appliance.admin.sizes import parse_size
from appliance.tui import models


@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("500000", 500000), ("100k", 100 * 1024), ("250M", 250 * 1024 ** 2), ("2G", 2 * 1024 ** 3),
    ("1.5g", int(1.5 * 1024 ** 3)), (" 10MB ", 10 * 1024 ** 2),
])
def test_quotas_are_typed_the_way_people_write_them(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-5M", "5X", "9" * 400, "99999999999G"])
def test_a_quota_that_is_not_a_size_is_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_sizes_and_usage_fit_narrow_columns():
    assert [models.size(n) for n in (0, 512, 9728, 12 * 1024, 312 * 1024 ** 2, 1024 ** 3)] == \
        ["0B", "512B", "9.5k", "12k", "312M", "1.0G"]
    assert models.quota_text(312 * 1024 ** 2, 1024 ** 3) == "312M/1.0G 30%"
    assert models.quota_text(48 * 1024 ** 2, 0) == "48M"


def test_the_sender_column_shows_a_name_when_there_is_one():
    assert models.sender("Bob <bob@example.org>") == "Bob"
    assert models.sender('"Mustermann, Max" <max@partner.example>') == "Mustermann, Max"
    assert models.sender("noreply@bank.example") == "noreply@bank.example"
    assert models.sender("") == "-"
    assert models.sender("A Very Long Display Name Indeed <x@y.example>", width=10) == "A Very Lo…"
    # a name that looks like an address shows the address behind it
    assert models.sender('"ceo@bank.example" <evil@evil.example>') == "evil@evil.example"
    assert models.sender('"Bank, CEO <ceo@bank.example>" <evil@evil.example>') == "evil@evil.example"
    assert models.sender('"Say \\"hi\\"" <a@b.example>') == 'Say "hi"'
    assert models.sender("a@b.example, c@d.example") == "a@b.example, c@d.example"


def test_traffic_continues_the_server_history_and_moves_with_the_clock():
    traffic = models.Traffic()
    minute = 29_000_000
    traffic.load({"minute": minute, "in": [1, 2, 3], "out": [0, 0, 1]})
    assert traffic.incoming[-3:] == [1, 2, 3] and len(traffic.incoming) == models.TRAFFIC_MINUTES

    now = minute * 60 + 30
    traffic.count({"type": "mailbox", "kind": "exists", "count": 2}, now)
    traffic.count({"type": "queue", "kind": "queued", "ids": [7, 8]}, now)
    traffic.count({"type": "queue", "kind": "delivered", "ids": [7]}, now)
    traffic.count({"type": "mailbox", "kind": "flags", "count": 5}, now)     # not traffic
    assert (traffic.incoming[-1], traffic.outgoing[-1]) == (3 + 2 + 2, 1 + 1)

    traffic.advance(now + 120)      # two quiet minutes later
    assert traffic.incoming[-3:] == [7, 0, 0]
    traffic.advance(now + 3600)     # longer than the window: all quiet
    assert set(traffic.incoming) == {0}


def test_the_log_filter_wants_every_word():
    line = {"level": "WARNING", "name": "kotakpos.auth", "pid": 4711, "message": "login failed ip=203.0.113.50"}
    assert models.log_matches(line, "")
    assert models.log_matches(line, "warning 203.0.113")
    assert models.log_matches(line, "AUTH failed")
    assert models.log_matches(line, "4711 failed")     # one worker's lines
    assert not models.log_matches(line, "auth ok")


def test_a_worker_row_says_how_its_predecessor_ended():
    now = 1_800_000_000.0
    worker = {"index": 1, "pid": 13007, "started": now - 65, "sessions": 3,
              "sessions_by_protocol": {"smtp": 1, "imap": 2}, "cpu_seconds": 6.5, "rss": 64 * 1024 ** 2,
              "pss": 39 * 1024 ** 2, "restarts": 2,
              "last_exit": {"reason": "killed by signal 9 (SIGKILL)", "signal": "SIGKILL", "status": None, "at": now - 65}}
    cells = models.worker_cells(worker, 10.0, now)
    assert cells == {"index": "1", "pid": "13007", "up": "1m05s", "sessions": "imap 2 smtp 1", "cpu": "10%",
                     "cpu_time": "6.5s", "memory": "64M/39M", "restarts": "2, SIGKILL 1m05s ago"}
    exited = {**worker, "last_exit": {"reason": "exited with status 1", "signal": None, "status": 1, "at": now - 7200}}
    assert models.worker_cells(exited, 0, now)["restarts"] == "2, status 1 2h00m ago"
    first = {**worker, "restarts": 0, "last_exit": None, "sessions_by_protocol": {}}
    assert models.worker_cells(first, 0, now)["restarts"] == "0"
    assert models.worker_cells(first, 0, now)["sessions"] == "-"
    assert models.worker_cells({"index": 1}, 0, now)["sessions"] == "not answering (restarting?)"


def test_worker_cpu_is_the_share_of_a_core_between_two_reports():
    load = models.WorkerLoad()
    worker = {"pid": 7, "started": 1000.0, "cpu_seconds": 5.0}
    assert load.percent(worker, 1100.0) == pytest.approx(5.0)        # first report: the average since it started
    assert load.percent({**worker, "cpu_seconds": 6.0}, 1102.0) == pytest.approx(50.0)
    assert load.percent({**worker, "cpu_seconds": 6.0}, 1102.0) == pytest.approx(50.0)  # no time passed
    load.forget_others(set())
    assert load.percent({**worker, "cpu_seconds": 6.0}, 1200.0) == pytest.approx(3.0)


def test_mail_dates_always_show_the_day():
    now = time.mktime((2026, 11, 20, 12, 0, 0, 0, 0, -1))
    assert models.mail_date(now - 3600, now) == "Nov 20 11:00"
    assert models.mail_date(time.mktime((2026, 1, 5, 9, 30, 0, 0, 0, -1)), now) == "Jan 05 09:30"
    assert models.mail_date(time.mktime((2025, 12, 31, 23, 0, 0, 0, 0, -1)), now) == "2025-12-31"
    assert models.mail_date(0, now) == "-"
