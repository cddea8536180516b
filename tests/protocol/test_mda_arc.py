"""ARC (RFC 8617) over two hops on loopback: mail arrives by SMTP with DKIM (and maybe an
ARC chain of an earlier forwarder), Kotakpos records ``arc=`` in Authentication-Results,
forwards it (an alias with an outside target, a Sieve redirect) and the receiving MTA (an
aiosmtpd sink) verifies the ARC set we added with dkimpy, against the test DNS zone."""

import re
import smtplib

import authres
import dkim
import pytest

from appliance.mda import account_rules
from appliance.mta import dkim as kotakpos_dkim
from tests import dns_zone
from tests.conftest import PASSWORD
from tests.mda_helpers import folder, plain, rsa_key, send, wire
from tests.protocol.mta_helpers import FAST_RETRY
from tests.protocol.mta_sink import Sink

ALICE = "alice@example.org"
AUTHOR = "news@origin.test"


@pytest.fixture(scope="module")
def keys():
    return {"origin": rsa_key(), "list": rsa_key()}


@pytest.fixture
def office(make_server, keys):
    sink = Sink()
    zone = dns_zone.Zone()
    zone.add("k1._domainkey.origin.test", "TXT", f"v=DKIM1; k=rsa; p={keys['origin'][1]}")
    zone.add("origin.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")  # the forwarder's 127.0.0.1 fails SPF
    zone.add("_dmarc.origin.test", "TXT", "v=DMARC1; p=none")
    zone.add("arc._domainkey.list.test", "TXT", f"v=DKIM1; k=rsa; p={keys['list'][1]}")
    dns, address = dns_zone.start(zone)
    server = make_server(dns={"resolver": address}, mda={"filters": ["auth", "spam", "rules"]},
                         mta={"routes": {"remote.test": sink.route}, "retry_intervals": FAST_RETRY,
                              "srs_domain": "example.org"})
    server.admin.add_domain("example.org")  # makes the domain's keys, as `kotakpos domain add` does
    for name, value in kotakpos_dkim.public_records(server.store, "example.org"):
        zone.add(name, "TXT", value)
    server.add_user(ALICE)
    server.zone, server.sink = zone, sink
    yield server
    sink.close()
    dns.stop()


def lookup(zone: dns_zone.Zone):
    """A dnsfunc for dkimpy over the test zone, as the receiving MTA would look keys up."""
    def txt(name, timeout=5):
        values = zone.records.get((name.decode().rstrip(".").lower(), "TXT"))
        return values[0].encode() if values else None
    return txt


def signed_by_author(keys, body: str = "The quarterly numbers.\n") -> bytes:
    raw = wire(plain(sender=AUTHOR, to="team@example.org", subject="numbers", body=body))
    return dkim.sign(raw, b"k1", b"origin.test", keys["origin"][0], include_headers=[b"from", b"subject", b"to"]) + raw


def sealed_by_list(keys, raw: bytes) -> bytes:
    """``raw`` as a mailing list at list.test forwards it: its results and an ARC set i=1."""
    results = (b"Authentication-Results: mx.list.test; spf=pass smtp.mailfrom=news@origin.test;\r\n"
               b"\tdkim=pass header.d=origin.test header.s=k1; dmarc=pass header.from=origin.test\r\n")
    arc_set = dkim.arc_sign(results + raw, b"arc", b"list.test", keys["list"][0], b"mx.list.test")
    return b"".join(arc_set) + results + raw


def field(raw: bytes, name: str) -> list[str]:
    """Every value of header ``name``, unfolded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    return [re.sub(r"\r\n[ \t]+", " ", m.group(1)) for m in
            re.finditer(rf"^{name}:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M | re.I)]


def ours(raw: bytes) -> str:
    """Our Authentication-Results (not the list's)."""
    [results] = [v for v in field(raw, "Authentication-Results") if not v.startswith("mx.list.test;")]
    return results


def test_alias_to_an_outside_address_forwards_with_an_arc_set_that_verifies(office, keys):
    office.store.add_alias("team@example.org", ["phone@remote.test"])
    send(office, signed_by_author(keys), to="team@example.org", sender=AUTHOR)
    [got] = office.sink.wait_for(1)
    cv, instances, reason = dkim.arc_verify(got.data, dnsfunc=lookup(office.zone))
    assert (cv, reason) == (dkim.CV_Pass, "success")
    assert [(i["instance"], i["as-domain"], i["cv"]) for i in instances] == [(1, b"example.org", b"none")]
    [aar] = field(got.data, "ARC-Authentication-Results")
    assert aar.startswith("i=1; ") and "dkim=pass header.d=origin.test header.s=k1" in aar and "arc=none" in aar
    assert "spf=fail smtp.mailfrom=news@origin.test" in aar  # what forwarding breaks: ARC carries the rest
    assert got.sender.startswith("SRS0=")


def test_a_forwarded_chain_gets_the_next_instance(office, keys):
    office.store.add_alias("team@example.org", ["phone@remote.test"])
    send(office, sealed_by_list(keys, signed_by_author(keys)), to="team@example.org", sender=AUTHOR)
    [got] = office.sink.wait_for(1)
    cv, instances, reason = dkim.arc_verify(got.data, dnsfunc=lookup(office.zone))
    assert (cv, reason) == (dkim.CV_Pass, "success")
    assert [(i["instance"], i["as-domain"], i["cv"]) for i in instances] == [(2, b"example.org", b"pass"),
                                                                              (1, b"list.test", b"none")]
    [aar2] = [v for v in field(got.data, "ARC-Authentication-Results") if v.startswith("i=2;")]
    assert "arc=pass header.oldest-pass=0 smtp.remote-ip=127.0.0.1" in aar2  # the AAR carries no comments
    assert "arc=pass (as.1.list.test=pass, ams.1.list.test=pass) header.oldest-pass=0 smtp.remote-ip=127.0.0.1" \
        in ours(got.data)


def test_a_seal_broken_after_sealing_is_recorded_as_arc_fail(office, keys):
    sealed = sealed_by_list(keys, signed_by_author(keys, body="Pay 10 EUR.\n"))
    send(office, sealed.replace(b"Pay 10 EUR.", b"Pay 99 EUR."), to=ALICE, sender=AUTHOR)
    send(office, sealed, to=ALICE, sender=AUTHOR)
    tampered, intact = folder(office, ALICE)
    assert re.search(r"\barc=fail \(as\.1\.list\.test=pass, ams\.1\.list\.test=fail\) smtp\.remote-ip=127\.0\.0\.1",
                     ours(tampered))
    assert "dkim=fail header.d=origin.test" in ours(tampered)
    assert "arc=pass (as.1.list.test=pass, ams.1.list.test=pass) header.oldest-pass=0" in ours(intact)


def test_a_broken_chain_goes_on_sealed_as_failed(office, keys):
    office.store.add_alias("team@example.org", ["phone@remote.test"])
    sealed = sealed_by_list(keys, signed_by_author(keys, body="Pay 10 EUR.\n"))
    send(office, sealed.replace(b"Pay 10 EUR.", b"Pay 99 EUR."), to="team@example.org", sender=AUTHOR)
    [got] = office.sink.wait_for(1)
    # RFC 8617 §5.1.1: our set says the chain had failed when it reached us, and the
    # receiving MTA's verification fails with it, whatever the list's seal still proves
    [seal] = [v for v in field(got.data, "ARC-Seal") if v.startswith("i=2;")]
    assert " cv=fail;" in seal and "d=example.org;" in seal
    cv, _, _ = dkim.arc_verify(got.data, dnsfunc=lookup(office.zone))
    assert cv != dkim.CV_Pass
    [aar] = [v for v in field(got.data, "ARC-Authentication-Results") if v.startswith("i=2;")]
    assert "arc=fail" in aar and "dkim=fail header.d=origin.test" in aar


def test_nothing_a_client_wrote_becomes_a_result_in_our_seal(office, keys):
    office.store.add_alias("team@example.org", ["phone@remote.test"])
    # a bounce is checked by its HELO name (RFC 7208 §2.4), which we write into our results
    with smtplib.SMTP("127.0.0.1", office.port("smtp"), local_hostname="mx.origin.test;arc=pass;dmarc=pass",
                      timeout=30) as client:
        client.sendmail("", ["team@example.org"], signed_by_author(keys))
    [got] = office.sink.wait_for(1)
    [aar] = field(got.data, "ARC-Authentication-Results")
    parsed = authres.AuthenticationResultsHeader.parse("Authentication-Results: " + aar.partition(";")[2])
    assert [(r.method, r.result) for r in parsed.results] == [("spf", "none"), ("dkim", "pass"), ("dmarc", "pass"),
                                                              ("arc", "none")]
    assert 'smtp.mailfrom="mx.origin.test;arc=pass;dmarc=pass"' in ours(got.data)


def test_the_account_pages_forwarding_is_sealed(office, keys):
    forwarding = account_rules.Forwarding(("alice.phone@remote.test",), keep=True)
    office.store.set_account_rules(office.store.get_user(ALICE).id,
                                   account_rules.to_sieve(account_rules.AccountRules(forwarding=forwarding)))
    send(office, signed_by_author(keys), to=ALICE, sender=AUTHOR)
    [got] = office.sink.wait_for(1)
    cv, instances, _ = dkim.arc_verify(got.data, dnsfunc=lookup(office.zone))
    assert cv == dkim.CV_Pass and [i["as-domain"] for i in instances] == [b"example.org"]
    assert len(folder(office, ALICE)) == 1  # and the copy kept here


def test_mail_without_arc_records_arc_none(office, keys):
    send(office, signed_by_author(keys), to=ALICE, sender=AUTHOR)
    [got] = folder(office, ALICE)
    assert "dkim=pass header.d=origin.test" in ours(got) and "arc=none" in ours(got)


def test_sieve_redirect_outside_is_sealed(office, keys):
    office.admin.rules_set(ALICE, 'redirect "alice.phone@remote.test";')
    send(office, signed_by_author(keys), to=ALICE, sender=AUTHOR)
    [got] = office.sink.wait_for(1)
    cv, instances, _ = dkim.arc_verify(got.data, dnsfunc=lookup(office.zone))
    assert cv == dkim.CV_Pass and [i["as-domain"] for i in instances] == [b"example.org"]


def test_a_trusted_sealer_takes_away_the_spf_and_dmarc_penalty(make_server, office, keys):
    # the list tags the subject (which breaks the author's DKIM), then seals what it sends on
    raw = sealed_by_list(keys, signed_by_author(keys).replace(b"Subject: numbers", b"Subject: [team] numbers"))
    send(office, raw, to=ALICE, sender=AUTHOR)
    [untrusted] = folder(office, ALICE)
    assert "SPF_FAIL" in field(untrusted, "X-Spam-Status")[0] and "DMARC_NONE" in field(untrusted, "X-Spam-Status")[0]
    # the setting is read when the filter starts: a second server, asking the same DNS
    trusting = make_server(dns={"resolver": office.config.dns.resolver},
                           mda={"filters": ["auth", "spam"], "arc_trusted_sealers": ["List.Test"]})
    trusting.add_user(ALICE)
    send(trusting, raw, to=ALICE, sender=AUTHOR)
    [trusted] = folder(trusting, ALICE)
    status = field(trusted, "X-Spam-Status")[0]
    assert "SPF_FAIL" not in status and "DMARC" not in status
    assert "arc=pass (trusted sealer list.test; as.1.list.test=pass, ams.1.list.test=pass)" in ours(trusted)


def test_an_incomplete_arc_set_fails_with_the_reason(office, keys):
    sealed = sealed_by_list(keys, signed_by_author(keys))
    incomplete = re.sub(rb"^ARC-Message-Signature:.*?\r\n(?=\S)", b"", sealed, flags=re.S | re.M)
    send(office, incomplete, to=ALICE, sender=AUTHOR)
    [got] = folder(office, ALICE)
    assert "arc=fail (Incomplete ARC set for instance 1) smtp.remote-ip=127.0.0.1" in ours(got)


def test_our_own_users_mail_to_a_forwarding_alias_is_signed_not_sealed(office):
    office.store.add_alias("team@example.org", ["phone@remote.test"])
    send(office, plain(sender=ALICE, to="team@example.org"), to="team@example.org", sender=ALICE,
         port="submission", login=(ALICE, PASSWORD))
    [got] = office.sink.wait_for(1)
    assert got.data.startswith(b"DKIM-Signature:") and not field(got.data, "ARC-Seal")
