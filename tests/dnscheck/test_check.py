"""kotakpos check against a DNS server on loopback (dnslib): a correct zone passes, a broken one is named."""

from __future__ import annotations

import dnslib
import pytest
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from appliance.mta import dkim
from appliance.store import Store
from tests.migrate.fixtures import cli

DOMAIN = "example.org"
HOST = "mail.example.org"
PUBLIC = "192.0.2.25"


class Zone(BaseResolver):
    """Answers from a list of resource records; NXDOMAIN for names it does not hold."""

    def __init__(self):
        self.rrs: list[dnslib.RR] = []

    def add(self, name: str, rtype: str, rdata) -> None:
        self.rrs.append(dnslib.RR(name, getattr(dnslib.QTYPE, rtype), rdata=rdata, ttl=60))

    def txt(self, name: str, value: str) -> None:
        data = value.encode()
        self.add(name, "TXT", dnslib.TXT([data[i:i + 255] for i in range(0, len(data), 255)]))

    def resolve(self, request, handler):
        reply = request.reply()
        qname = request.q.qname
        matching = [rr for rr in self.rrs if rr.rname == qname]
        if not matching:
            reply.header.rcode = dnslib.RCODE.NXDOMAIN
        for rr in matching:
            if rr.rtype == request.q.qtype:
                reply.add_answer(rr)
        return reply


@pytest.fixture
def data(tmp_path):
    """A data folder with the domain (and its DKIM keys) and a config naming the local DNS server."""
    cli(tmp_path, "domain", "add", DOMAIN)
    return tmp_path


def serve(zone: Zone, data, public: str = PUBLIC):
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    server.start_thread()
    port = server.server.server_address[1]
    (data / "kotakpos.toml").write_text(f'[server]\nhostname = "{HOST}"\n[dns]\nresolver = "127.0.0.1:{port}"\n'
                                        f'[check]\npublic_address = "{public}"\n')
    return server


def published_keys(data) -> list[tuple[str, str]]:
    """The DKIM records `kotakpos domain add` made for DOMAIN, read from the store."""
    store = Store.in_folder(data)
    try:
        return dkim.public_records(store, DOMAIN)
    finally:
        store.close()


def correct_zone(data) -> Zone:
    zone = Zone()
    zone.add(DOMAIN, "MX", dnslib.MX(HOST, 10))
    zone.add(HOST, "A", dnslib.A(PUBLIC))
    zone.txt(DOMAIN, "v=spf1 mx -all")
    for name, value in published_keys(data):
        zone.txt(name, value)
    zone.txt(f"_dmarc.{DOMAIN}", f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{DOMAIN}")
    zone.add("25.2.0.192.in-addr.arpa", "PTR", dnslib.PTR(HOST))
    return zone


def test_a_correct_zone_passes(data):
    server = serve(correct_zone(data), data)
    try:
        out = cli(data, "check")
    finally:
        server.stop()
    assert "FAIL" not in out and out.rstrip().endswith("All checks passed.")
    for aspect in ("MX", "SPF", "DKIM", "DMARC", "PTR"):
        assert f"ok    {aspect}" in out
    assert "warn  MTA-STS  not published (optional" in out   # optional: not a failure


def test_a_broken_zone_names_each_problem_with_the_record_to_publish(data):
    zone = Zone()
    zone.add(DOMAIN, "MX", dnslib.MX("mx.old-isp.example", 10))        # MX elsewhere
    zone.txt(DOMAIN, "v=spf1 include:old-isp.example -all")
    zone.txt(DOMAIN, "v=spf1 ip4:198.51.100.0/24 -all")                   # two SPF records
    rsa_name, _ = published_keys(data)[0]
    zone.txt(rsa_name, "v=DKIM1; k=rsa; p=AAAAnotourkey")                 # stale key; ed25519 missing
    zone.add("25.2.0.192.in-addr.arpa", "PTR", dnslib.PTR("dsl-192-0-2-25.isp.example"))  # ISP's generic name
    server = serve(zone, data)
    try:
        out = cli(data, "check", DOMAIN, code=1)
    finally:
        server.stop()
    lines = out.splitlines()
    assert f"FAIL  MX       the MX of {DOMAIN} names mx.old-isp.example., not {HOST}" in out
    assert f"publish: {DOMAIN}.\tIN\tMX\t10 {HOST}." in out
    assert "FAIL  SPF      example.org has 2 SPF records" in out
    assert f'publish: {DOMAIN}.\tIN\tTXT\t"v=spf1 mx ~all"' in out
    assert f"FAIL  DKIM     {rsa_name} holds a different key" in out
    assert "FAIL  DKIM     kotakpos-ed25519._domainkey.example.org is missing" in out
    assert any(line.strip().startswith("publish: kotakpos-ed25519._domainkey.example.org.\tIN\tTXT\t\"v=DKIM1; k=ed25519; p=")
               for line in lines)
    assert f"FAIL  DMARC    _dmarc.{DOMAIN} is missing" in out
    assert "warn  MTA-STS  not published" in out
    assert f"FAIL  PTR      {PUBLIC} is named dsl-192-0-2-25.isp.example., not {HOST}" in out
    assert f"publish: 25.2.0.192.in-addr.arpa.\tIN\tPTR\t{HOST}." in out


def test_spf_that_leaves_us_out_gets_our_mx_added(data):
    zone = correct_zone(data)
    zone.rrs = [rr for rr in zone.rrs if not (rr.rtype == dnslib.QTYPE.TXT and str(rr.rname) == DOMAIN + ".")]
    zone.txt(DOMAIN, "v=spf1 ip4:198.51.100.7 -all")
    server = serve(zone, data)
    try:
        out = cli(data, "check", code=1)
    finally:
        server.stop()
    assert f'publish: {DOMAIN}.\tIN\tTXT\t"v=spf1 mx ip4:198.51.100.7 -all"' in out


def test_an_unreachable_resolver_fails_loudly_and_still_shows_the_records(data):
    (data / "kotakpos.toml").write_text(f'[server]\nhostname = "{HOST}"\n[dns]\nresolver = "127.0.0.1:9"\ntimeout = 1.0\n')
    out = cli(data, "check", code=1)
    assert "FAIL  DNS      DNS could not be reached (DNS gave no answer for example.org MX" in out
    # every record `kotakpos dns` prints, in the same form
    for line in cli(data, "dns", DOMAIN).splitlines():
        assert f"{'':16}{line}\n" in out
    assert f"{DOMAIN}.\tIN\tMX\t10 {HOST}." in out and "_dmarc.example.org." in out
    assert out.splitlines()[-1].startswith("DNS could not be reached: check [dns] resolver")


def test_check_warns_of_a_bare_hostname_and_of_mail_data_others_can_read(data):
    (data / "kotakpos.toml").write_text('[server]\nhostname = "vm"\n[dns]\nresolver = "127.0.0.1:9"\ntimeout = 1.0\n')
    data.chmod(0o755)
    (data / "kotakpos.sqlite").chmod(0o644)
    out = cli(data, "check", code=1)
    assert ("FAIL  local    server.hostname 'vm' is not a fully qualified domain name: it is the name this "
            "server gives in HELO") in out
    assert 'under [server]: hostname = "mail.example.org"' in out
    assert f"the data folder {data} is open to other users (mode 0755): fix it with chmod 700 {data}" in out
    assert (f"file {data}/kotakpos.sqlite is open to other users (mode 0644): "
            f"fix it with chmod 600 {data}/kotakpos.sqlite") in out
    assert "warning: server.hostname 'vm' is not a fully qualified domain name" in cli(data, "dns", DOMAIN)


def test_check_is_content_with_a_private_data_folder_and_a_full_hostname(data):
    zone = correct_zone(data)
    server = serve(zone, data)
    try:
        out = cli(data, "check")
    finally:
        server.stop()
    assert "ok    local    a fully qualified hostname; the mail data is private" in out


def test_mta_sts_policy_fetched_from_kotakpos_and_compared(make_server, tmp_path):
    from appliance.dnscheck.checks import FAIL, OK, Resolver, check_mta_sts
    from appliance.net.tls import ensure_certificate
    folder = tmp_path / "mx"
    ensure_certificate(folder / "tls" / "cert.pem", folder / "tls" / "key.pem", f"mta-sts.{DOMAIN}")
    srv = make_server(data_dir=folder, web={"enabled": True, "http_port": 0, "https_port": 0, "mta_sts_mode": "enforce"})
    srv.store.add_domain(DOMAIN)
    zone = Zone()
    zone.txt(f"_mta-sts.{DOMAIN}", "v=STSv1; id=1")
    zone.add(f"mta-sts.{DOMAIN}", "A", dnslib.A("127.0.0.1"))
    dns = DNSServer(zone, address="127.0.0.1", port=0, logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    dns.start_thread()
    try:
        resolver = Resolver(f"127.0.0.1:{dns.server.server_address[1]}")
        port, trusted = srv.server.web.port("https"), str(folder / "tls" / "cert.pem")
        good = check_mta_sts(resolver, DOMAIN, HOST, port, trusted)
        assert (good.status, good.detail) == (OK, f"v=STSv1; id=1; policy mode enforce, mx {HOST}")
        elsewhere = check_mta_sts(resolver, DOMAIN, "mx2.example.net", port, trusted)
        assert elsewhere.status == FAIL and f"allows mx {HOST}, not mx2.example.net" in elsewhere.detail
        untrusted = check_mta_sts(resolver, DOMAIN, HOST, port)
        assert untrusted.status == FAIL and "certificate verify failed" in untrusted.detail
    finally:
        dns.stop()


def test_mx_patterns_of_a_policy():
    from appliance.dnscheck.checks import mx_matches, parse_policy
    policy = parse_policy("version: STSv1\r\nmode: testing\r\nmx: *.example.org\r\nmx: mail.example.net\r\nmax_age: 86400\r\n")
    assert policy["mx"] == ["*.example.org", "mail.example.net"] and policy["mode"] == ["testing"]
    assert mx_matches("*.example.org", "mail.example.org") and not mx_matches("*.example.org", "a.b.example.org")
    assert not mx_matches("*.example.org", "example.org") and mx_matches("MAIL.example.net.", "mail.example.net")
