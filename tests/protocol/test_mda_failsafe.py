"""A filter that crashes or hangs never loses mail: the message lands in INBOX, the failure is counted."""

import threading

import pytest

from appliance.mda.auth import AuthFilter
from appliance.mda.filter import Check, Filter, Verdict
from appliance.mda.receipts import ReceiptsFilter
from appliance.mda.rules import RulesFilter
from appliance.mda.spam import SpamFilter
from appliance.mda.virus import VirusFilter
from tests.mda_helpers import EICAR, Counting, folder, plain, send


pytestmark = pytest.mark.in_process(reason="each test puts its own filters into the server's pipeline")

ALICE = "alice@example.org"


class Crashing(Filter):
    name = "crashing"

    def check(self, msg):
        class C(Check):
            def check_body(self):
                raise RuntimeError("filter bug")
        return C(msg)


class Hanging(Filter):
    name = "hanging"

    def __init__(self):
        self.release = threading.Event()
        self.closed = threading.Event()

    def check(self, msg):
        f = self

        class C(Check):
            def check_body(self):
                f.release.wait(30)
                return Verdict(reject=(554, "5.7.1", "too late"))

            def close(self):
                f.closed.set()
        return C(msg)


class Tagging(Filter):
    name = "tagging"

    def check(self, msg):
        class C(Check):
            def check_body(self):
                return Verdict(add_headers=(("X-Tagged", "yes"),))
        return C(msg)


class Where(Filter):
    """Notes the thread its check ran in, in an added header."""

    def __init__(self, name: str, runs_locally: bool):
        self.name, self.runs_locally = name, runs_locally

    def check(self, msg):
        f = self

        class C(Check):
            def check_body(self):
                return Verdict(add_headers=((f"X-{f.name}", threading.current_thread().name),))
        return C(msg)


@pytest.fixture
def alice(make_server):
    server = make_server(mda={"time_budget": 0.5})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    return server


def test_a_crashing_filter_loses_nothing_and_later_filters_still_run(alice):
    alice.ctx.mda.filters = [Crashing(), Tagging()]
    send(alice, plain(subject="survives a crash"))
    [raw] = folder(alice, ALICE)
    assert b"survives a crash" in raw and b"X-Tagged: yes" in raw
    assert alice.ctx.stats["mda.filter_error"] == 1


def test_a_hanging_filter_loses_nothing(alice):
    hanging = Hanging()
    alice.ctx.mda.filters = [hanging]
    send(alice, plain(subject="survives a hang"))
    [raw] = folder(alice, ALICE)
    assert b"survives a hang" in raw
    assert alice.ctx.stats["mda.timeout"] == 1
    hanging.release.set()  # its late verdict changes nothing, and close() still runs
    assert hanging.closed.wait(5)
    assert len(folder(alice, ALICE)) == 1


def test_a_crashing_filter_does_not_hide_a_virus_found_by_another(alice):
    alice.ctx.mda.filters = [Crashing(), VirusFilter(alice.ctx)]
    with pytest.raises(Exception):
        send(alice, plain(body=EICAR.decode()))
    assert folder(alice, ALICE) == []


def test_an_unknown_filter_name_stops_the_start_with_a_clear_error(make_server):
    with pytest.raises(ValueError, match=r"unknown MDA filter\(s\) \['antivirus'\]"):
        make_server(mda={"filters": ["antivirus"]})


def test_filters_that_wait_on_nothing_run_in_the_session_and_the_others_on_the_pool(alice):
    alice.ctx.mda.filters = [Where("local", True), Where("remote", False), Where("after", True)]
    send(alice, plain(subject="where"))
    [raw] = folder(alice, ALICE)
    assert b"X-local: smtp-" in raw and b"X-after: smtp-" in raw
    assert b"X-remote: mda-filters" in raw


def test_a_hanging_filter_after_a_local_one_still_only_costs_the_budget(alice):
    hanging = Hanging()
    alice.ctx.mda.filters = [Where("local", True), hanging]
    send(alice, plain(subject="local, then a hang"))
    [raw] = folder(alice, ALICE)
    assert b"local, then a hang" in raw and b"X-local" not in raw  # unfiltered, as it came
    assert alice.ctx.stats["mda.timeout"] == 1
    hanging.release.set()
    assert hanging.closed.wait(5)


@pytest.mark.parametrize("config, pooled", [
    ({}, set()),
    ({"resolver": "127.0.0.1:53"}, {"auth"}),
    ({"clamd": "127.0.0.1:3310"}, {"virus"}),
    ({"spamd": "127.0.0.1:783"}, {"spam"}),
    ({"resolver": "127.0.0.1:53", "dnsbl": ["bl.test"]}, {"auth", "spam"}),
])
def test_only_the_filters_that_ask_another_host_are_pooled(config, pooled):
    ctx = Counting(**config)
    filters = [VirusFilter(ctx), AuthFilter(ctx), SpamFilter(ctx), RulesFilter(ctx), ReceiptsFilter(ctx)]
    assert {f.name for f in filters if not f.runs_locally} == pooled
