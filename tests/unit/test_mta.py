"""The MTA's pure parts: SRS, DSN text, retry schedule, wire helpers, transport choice."""

from __future__ import annotations

import email
import email.policy

import pytest

from appliance.config import Config, with_overrides
from appliance.mta import dsn, srs, sts, transport
from appliance.mta.deliver import Result, stuff, xtext
from appliance.mta.errors import DeliveryError
from appliance.mta.queue import parse_duration, retry_delay, strip_return_path
from appliance.net.dns import make_resolver

SECRET = b"0123456789abcdef"
DAY = 86400.0


# -- SRS --------------------------------------------------------------------------------

def test_srs_rewrites_and_reverses():
    address = srs.forward("alice@example.com", "fwd.example.org", SECRET, now=100 * DAY)
    assert address.startswith("SRS0=") and address.endswith("=example.com=alice@fwd.example.org")
    assert srs.reverse(address, SECRET, now=101 * DAY) == "alice@example.com"


def test_srs_refuses_forged_and_stale_addresses():
    address = srs.forward("alice@example.com", "fwd.example.org", SECRET, now=100 * DAY)
    assert srs.reverse(address.replace("alice", "mallory"), SECRET, now=100 * DAY) is None
    assert srs.reverse(address, b"another secret", now=100 * DAY) is None
    assert srs.reverse(address, SECRET, now=(100 + srs.MAX_AGE_DAYS + 1) * DAY) is None
    assert srs.reverse("alice@example.com", SECRET) is None


def test_srs0_from_another_forwarder_becomes_srs1_pointing_back_at_it():
    first = srs.forward("alice@example.com", "first.test", b"their secret", now=5 * DAY)
    second = srs.forward(first, "fwd.example.org", SECRET, now=5 * DAY)
    assert second.startswith("SRS1=") and "=first.test==" in second
    assert srs.reverse(second, SECRET) == first
    assert srs.forward(second, "third.test", SECRET).startswith("SRS1=")


# -- DSN --------------------------------------------------------------------------------

@pytest.mark.parametrize("notify, action, expected", [
    (None, dsn.FAILED, True), (None, dsn.DELAYED, True), (None, dsn.RELAYED, False),
    (["NEVER"], dsn.FAILED, False), (["SUCCESS"], dsn.FAILED, False), (["SUCCESS"], dsn.RELAYED, True),
    (["FAILURE", "DELAY"], dsn.DELAYED, True), (["FAILURE"], dsn.DELAYED, False),
])
def test_notify_decides_which_reports_are_sent(notify, action, expected):
    assert dsn.wanted({} if notify is None else {"notify": notify}, action) is expected


def _parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


ORIGINAL = b"From: a@example.org\r\nSubject: report\r\n\r\nthe body\r\n"


def test_failure_dsn_is_a_multipart_report_with_the_whole_message():
    raw = dsn.build("mail.example.org", "a@example.org", ORIGINAL,
                    [dsn.RecipientStatus("b@remote.test", dsn.FAILED, "5.1.1", "550 5.1.1 unknown", "mx.remote.test",
                                         ("rfc822", "B@remote.test"))],
                    arrival=0, envid="ID+1")
    m = _parse(raw)
    assert m.get_content_type() == "multipart/report" and m.get_param("report-type") == "delivery-status"
    assert m["To"].addresses[0].addr_spec == "a@example.org" and m["Auto-Submitted"] == "auto-replied"
    text, status, returned = m.get_payload()
    assert "<b@remote.test>: 550 5.1.1 unknown" in text.get_content()
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mail.example.org"
    assert per_message["Original-Envelope-Id"] == "ID+2B1"
    assert per_recipient["Original-Recipient"] == "rfc822; B@remote.test"
    assert per_recipient["Remote-MTA"] == "dns; mx.remote.test"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 unknown"
    assert returned.get_content_type() == "message/rfc822"
    assert b"the body" in raw


@pytest.mark.parametrize("action, ret", [(dsn.FAILED, "HDRS"), (dsn.DELAYED, None), (dsn.RELAYED, "FULL")])
def test_headers_only_for_ret_hdrs_and_for_delay_and_success_reports(action, ret):
    raw = dsn.build("mail.example.org", "a@example.org", ORIGINAL,
                    [dsn.RecipientStatus("b@remote.test", action, "4.4.1" if action == dsn.DELAYED else "5.0.0")],
                    arrival=0, ret=ret)
    assert b"text/rfc822-headers" in raw and b"the body" not in raw
    assert b"Subject: report" in raw


def test_received_headers_are_counted_in_the_header_only():
    raw = b"Received: a\r\nreceived: b\r\nSubject: x\r\n\r\nReceived: not a header\r\n"
    assert dsn.received_count(raw) == 2


# -- queue rules ------------------------------------------------------------------------

def test_durations_and_the_retry_schedule():
    schedule = [parse_duration(t) for t in Config().mta.retry_intervals]
    assert schedule == [60, 300, 900, 1800, 3600, 7200, 14400]
    assert [retry_delay(schedule, n) for n in (0, 6, 7, 40)] == [60, 14400, 14400, 14400]
    assert parse_duration("0.5s") == 0.5 and parse_duration("90") == 90 and parse_duration("5d") == 5 * DAY
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_a_leading_return_path_is_dropped_with_its_continuation():
    raw = b"Return-Path: <a@example.org>\r\nReturn-Path:\r\n <b@x>\r\nSubject: s\r\n\r\nReturn-Path: body\r\n"
    assert strip_return_path(raw) == b"Subject: s\r\n\r\nReturn-Path: body\r\n"


# -- the wire ---------------------------------------------------------------------------

def test_dot_stuffing_and_end_marker():
    assert stuff(b".hidden\r\nline\r\n..two\r\nlast") == b"..hidden\r\nline\r\n...two\r\nlast\r\n.\r\n"


def test_xtext_encodes_plus_equals_and_non_ascii():
    assert xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext("é") == "+C3+A9"


@pytest.mark.parametrize("code, text, status", [
    (550, "550 5.1.1 no such user", "5.1.1"), (451, "451 4.7.1 greylisted", "4.7.1"),
    (550, "550 no such user", "5.0.0"), (550, "550 4.1.1 wrong class", "5.0.0"), (250, "250 ok", "2.0.0"),
])
def test_result_status_from_the_enhanced_code(code, text, status):
    assert Result("r@x", code, text).status == status


# -- transport choice -------------------------------------------------------------------

def mta(**fields):
    return with_overrides(Config(), mta=fields).mta


def test_a_static_route_wins_over_the_smarthost():
    config = mta(routes={"Remote.Test": "10.0.0.5:2525"}, smarthost="smtp.isp.test")
    d = transport.find("remote.test", config)
    assert d.hops[0].host == "10.0.0.5" and d.hops[0].port == 2525 and d.tls == "opportunistic"
    assert transport.destination_key("remote.test", config) == "route 10.0.0.5:2525"


def test_smarthost_modes_and_default_ports():
    d = transport.find("anywhere.test", mta(smarthost="smtp.isp.test", smarthost_user="u", smarthost_password="p"))
    assert (d.hops[0].host, d.hops[0].port, d.tls, d.login) == ("smtp.isp.test", 587, "verify", ("u", "p"))
    d = transport.find("anywhere.test", mta(smarthost="[2001:db8::1]", smarthost_tls="implicit"))
    assert (d.hops[0].host, d.hops[0].port, d.tls, d.login) == ("2001:db8::1", 465, "implicit", None)


def test_domains_listed_for_verified_tls_get_it_on_their_route():
    d = transport.find("bank.test", mta(routes={"bank.test": "mx.bank.test"}, tls_verify_domains=["BANK.test"]))
    assert d.tls == "verify" and d.hops[0].port == 25


def test_an_unreachable_resolver_is_a_temporary_failure():
    resolver = make_resolver("127.0.0.1:9", 0.5)   # discard port: nobody answers DNS there
    with pytest.raises(DeliveryError) as e:
        transport.mx_hops("example.test", resolver)
    assert not e.value.permanent and e.value.status == "4.4.3"


# -- MTA-STS ----------------------------------------------------------------------------

def test_sts_policy_parsing():
    p = sts.parse_policy("version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 604800\n",
                         "id1", now=10.0)
    assert (p.mode, p.mx, p.max_age, p.id) == ("enforce", ("mx1.example.com", "*.example.net"), 604800, "id1")
    assert not p.expired(10.0 + 604800) and p.expired(10.0 + 604801)
    assert sts.parse_policy("version: STSv1\nmode: none\nmax_age: 9999999999\n", "x", 0).max_age == sts.MAX_AGE_LIMIT


@pytest.mark.parametrize("text", [
    "mode: enforce\nmx: a.test\nmax_age: 1\n",                       # no version
    "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",        # unknown mode
    "version: STSv1\nmode: enforce\nmax_age: 1\n",                    # no mx
    "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: soon\n",    # bad max_age
    "<html>not a policy</html>",
])
def test_sts_invalid_policies_are_refused(text):
    with pytest.raises(ValueError):
        sts.parse_policy(text, "id", 0)


@pytest.mark.parametrize("pattern, host, expected", [
    ("mx.example.com", "MX.example.com.", True), ("*.example.net", "mx1.example.net", True),
    ("*.example.net", "a.b.example.net", False), ("*.example.net", "example.net", False),
    ("mx.example.com", "mx.example.com.evil.test", False),
])
def test_sts_mx_patterns(pattern, host, expected):
    assert sts.matches(pattern, host) is expected
