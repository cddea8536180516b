"""Greylisting: a first attempt waits, a proper retry passes and is remembered; internal mail never waits.
DNS blocklists: a listed client address adds its score."""

import time

import pytest

from appliance.mda.greylist import GreylistFilter, network
from appliance.mda.spam import SpamFilter
from appliance.store import Store
from tests import dns_zone
from tests.mda_helpers import Counting, incoming, plain, wire


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "k.sqlite")
    yield s
    s.close()


def attempt(f, **kw):
    check = f.check(incoming(wire(plain()), **kw))
    try:
        return check.check_connection()
    finally:
        check.close()


def test_first_attempt_waits_then_a_retry_passes(store):
    ctx = Counting(store, greylist_delay=0.3)
    f = GreylistFilter(ctx)
    assert attempt(f, client_ip="203.0.113.5").reject == (451, "4.7.1", "Greylisted: please try again later")
    assert attempt(f, client_ip="203.0.113.5").reject is not None  # too early
    time.sleep(0.35)
    assert attempt(f, client_ip="203.0.113.77").reject is None  # same /24, after the delay
    assert attempt(f, client_ip="203.0.113.5").reject is None  # remembered: no delay any more
    assert attempt(f, client_ip="203.0.113.5", sender="other@remote.test").reject is not None  # new triplet
    assert ctx.stats["mda.greylisted"] == 3


def test_logged_in_users_never_wait(store):
    f = GreylistFilter(Counting(store))
    assert attempt(f, client_ip="203.0.113.5", authenticated_as="alice@example.org").reject is None


def test_networks():
    assert network("203.0.113.77") == "203.0.113.0/24"
    assert network("2001:db8:1:2:3::4") == "2001:db8:1:2::/64"


def test_a_listed_client_scores(store):
    zone = dns_zone.Zone()
    zone.add("34.216.184.93.bl.test", "A", "127.0.0.2")
    server, address = dns_zone.start(zone)
    try:
        f = SpamFilter(Counting(store, resolver=address, dnsbl=["bl.test", "other.test"], dnsbl_score=3.0))
        check = f.check(incoming(wire(plain()), client_ip="93.184.216.34"))
        check.check_body()
        assert check.hits[-1] == ("DNSBL_BL_TEST", 3.0) and len([h for h in check.hits if h[0].startswith("DNSBL")]) == 1
        check = f.check(incoming(wire(plain()), client_ip="10.1.2.3"))  # private: not asked
        check.check_body()
        assert not [h for h in check.hits if h[0].startswith("DNSBL")]
    finally:
        server.stop()
