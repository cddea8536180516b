"""A filter that crashes or hangs never loses mail: the message lands in INBOX, the failure is counted."""

import threading

import pytest

from appliance.mda.filter import Check, Filter, Verdict
from appliance.mda.virus import VirusFilter
from tests.mda_helpers import EICAR, folder, plain, send


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
