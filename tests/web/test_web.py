"""The client set-up listener: autoconfig, Autodiscover, Apple profiles and MTA-STS, over HTTP and HTTPS."""

from __future__ import annotations

import http.client
import plistlib
import ssl
import xml.etree.ElementTree as ET

import pytest

from appliance.web.documents import OUTLOOK_RESPONSE

DOMAIN = "example.org"
HOST = "mail.example.org"


@pytest.fixture
def web(make_server):
    srv = make_server(web={"enabled": True, "http_port": 0, "https_port": 0, "mta_sts_mode": "enforce"})
    srv.store.add_domain(DOMAIN)
    return srv


def request(srv, method, path, host=HOST, body=None, https=False):
    if https:
        context = ssl.create_default_context(cafile=srv.cafile)
        conn = http.client.HTTPSConnection("127.0.0.1", srv.server.web.port("https"), context=context, timeout=10)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", srv.server.web.port("http"), timeout=10)
    headers = {"Host": host}
    if body is not None:
        headers["Content-Type"] = "text/xml"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def servers_of(xml: bytes) -> dict[tuple[str, str], tuple[str, int]]:
    """(type, socketType) -> (hostname, port) of a Thunderbird config."""
    root = ET.fromstring(xml)
    assert root.tag == "clientConfig" and root.find("emailProvider").get("id") == DOMAIN
    return {(s.get("type"), s.findtext("socketType")): (s.findtext("hostname"), int(s.findtext("port")))
            for s in root.iter() if s.tag in ("incomingServer", "outgoingServer")}


@pytest.mark.parametrize("path,host", [
    ("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.org", HOST),
    ("/mail/config-v1.1.xml", "autoconfig.example.org"),
])
def test_thunderbird_autoconfig_names_our_host_and_ports(web, path, host):
    response, body = request(web, "GET", path, host)
    assert response.status == 200 and response.getheader("Content-Type").startswith("application/xml")
    assert servers_of(body) == {
        ("imap", "SSL"): (HOST, web.port("imaps")), ("imap", "STARTTLS"): (HOST, web.port("imap")),
        ("pop3", "SSL"): (HOST, web.port("pop3s")), ("pop3", "STARTTLS"): (HOST, web.port("pop3")),
        ("smtp", "SSL"): (HOST, web.port("smtps")), ("smtp", "STARTTLS"): (HOST, web.port("submission")),
    }


def test_autoconfig_over_https_with_our_certificate(web):
    response, body = request(web, "GET", "/mail/config-v1.1.xml", "autoconfig.example.org", https=True)
    assert response.status == 200 and servers_of(body)[("imap", "SSL")] == (HOST, web.port("imaps"))


def test_unknown_domains_get_nothing(web):
    assert request(web, "GET", "/mail/config-v1.1.xml", "autoconfig.other.org")[0].status == 404
    assert request(web, "GET", "/mobileconfig?email=a%40other.org")[0].status == 404
    assert request(web, "GET", "/etc/passwd")[0].status == 404


AUTODISCOVER_REQUEST = b"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>alice@example.org</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request></Autodiscover>"""


def test_outlook_autodiscover_answers_a_posted_request(web):
    response, body = request(web, "POST", "/Autodiscover/Autodiscover.xml", body=AUTODISCOVER_REQUEST, https=True)
    assert response.status == 200
    ns = {"o": OUTLOOK_RESPONSE}
    account = ET.fromstring(body).find("o:Response/o:Account", ns)
    assert account.findtext("o:Action", namespaces=ns) == "settings"
    protocols = {p.findtext("o:Type", namespaces=ns): (p.findtext("o:Server", namespaces=ns), int(p.findtext("o:Port", namespaces=ns)),
                                                       p.findtext("o:LoginName", namespaces=ns), p.findtext("o:SSL", namespaces=ns))
                 for p in account.findall("o:Protocol", ns)}
    assert protocols == {"IMAP": (HOST, web.port("imaps"), "alice@example.org", "on"),
                         "POP3": (HOST, web.port("pop3s"), "alice@example.org", "on"),
                         "SMTP": (HOST, web.port("smtps"), "alice@example.org", "on")}


def test_autodiscover_refuses_entities_and_junk(web):
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    assert request(web, "POST", "/autodiscover/autodiscover.xml", body=bomb)[0].status == 400
    assert request(web, "POST", "/autodiscover/autodiscover.xml", body=b"<not xml")[0].status == 400


def test_apple_profile_for_an_address(web):
    response, body = request(web, "GET", "/mobileconfig?email=alice%40example.org", https=True)
    assert response.status == 200 and response.getheader("Content-Type") == "application/x-apple-aspen-config"
    profile = plistlib.loads(body)
    account = profile["PayloadContent"][0]
    assert profile["PayloadType"] == "Configuration" and account["PayloadType"] == "com.apple.mail.managed"
    assert (account["EmailAddress"], account["IncomingMailServerHostName"], account["IncomingMailServerPortNumber"],
            account["OutgoingMailServerPortNumber"], account["IncomingMailServerUseSSL"]) == \
        ("alice@example.org", HOST, web.port("imaps"), web.port("smtps"), True)
    assert request(web, "GET", "/mobileconfig?email=alice%40example.org")[1] == body  # stable UUIDs


def test_mta_sts_policy(web):
    response, body = request(web, "GET", "/.well-known/mta-sts.txt", "mta-sts.example.org", https=True)
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/plain")
    assert body == b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmax_age: 604800\r\n"
    assert request(web, "GET", "/.well-known/mta-sts.txt", "mta-sts.other.org")[0].status == 404


def test_on_by_default(server):
    response, body = request(server, "GET", "/mail/config-v1.1.xml", "autoconfig.example.org", https=True)
    assert response.status == 200 and servers_of(body)[("imap", "SSL")] == (HOST, server.port("imaps"))


def test_https_serves_a_reloaded_certificate_from_the_next_connection(web):
    import socket
    from appliance.net.tls import ensure_certificate

    def served() -> bytes:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", web.server.web.port("https")), timeout=10) as sock:
            with context.wrap_socket(sock) as tls:
                return tls.getpeercert(binary_form=True)

    before = served()
    cert, key = web.data_dir / "tls" / "cert.pem", web.data_dir / "tls" / "key.pem"
    cert.unlink()
    key.unlink()
    assert ensure_certificate(cert, key, "renewed.example.org")
    web.server.reload_tls()
    after = served()
    assert after != before and after == ssl.PEM_cert_to_DER_cert(cert.read_text())


def test_the_account_page_over_http_moves_to_https(web):
    response, _ = request(web, "GET", "/account")
    assert response.status == 301
    assert response.getheader("Location") == f"https://{HOST}:{web.server.web.port('https')}/account"


def test_dns_lists_the_srv_records_and_setup_names(tmp_path):
    from tests.migrate.fixtures import cli
    (tmp_path / "kotakpos.toml").write_text(f'[server]\nhostname = "{HOST}"\n')
    cli(tmp_path, "domain", "add", DOMAIN)
    out = cli(tmp_path, "dns", DOMAIN)
    for line in (f"_imaps._tcp.{DOMAIN}.\tIN\tSRV\t0 1 993 {HOST}.", f"_submissions._tcp.{DOMAIN}.\tIN\tSRV\t0 1 465 {HOST}.",
                 f"_submission._tcp.{DOMAIN}.\tIN\tSRV\t0 1 587 {HOST}.", f"_pop3s._tcp.{DOMAIN}.\tIN\tSRV\t0 1 995 {HOST}.",
                 f"_sieve._tcp.{DOMAIN}.\tIN\tSRV\t0 1 4190 {HOST}.",
                 f"autoconfig.{DOMAIN}.\tIN\tCNAME\t{HOST}.", f"mta-sts.{DOMAIN}.\tIN\tCNAME\t{HOST}."):
        assert line in out.splitlines()


def test_silent_clients_do_not_block_the_rest_and_the_load_is_bounded(make_server, monkeypatch):
    import socket
    import time
    from appliance.web import server as web_server
    monkeypatch.setattr(web_server, "MAX_CLIENTS", 3)
    srv = make_server(web={"enabled": True, "http_port": 0, "https_port": 0})
    srv.store.add_domain(DOMAIN)
    # Clients that never finish their TLS handshake hold no thread and no slot.
    silent = [socket.create_connection(("127.0.0.1", srv.server.web.port("https")), timeout=5) for _ in range(10)]
    try:
        assert request(srv, "GET", "/mail/config-v1.1.xml", "autoconfig.example.org", https=True)[0].status == 200
    finally:
        for s in silent:
            s.close()
    # Connections that are open count: past the bound a request is answered 503 at once ...
    idle = [socket.create_connection(("127.0.0.1", srv.server.web.port("http")), timeout=5) for _ in range(3)]
    try:
        assert request(srv, "GET", "/mail/config-v1.1.xml", "autoconfig.example.org")[0].status == 503
    finally:
        for s in idle:
            s.close()
    # ... and their slots come back as soon as they go.
    deadline = time.monotonic() + 10
    while request(srv, "GET", "/mail/config-v1.1.xml", "autoconfig.example.org")[0].status != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_bad_mta_sts_mode_stops_the_start_with_the_setting_named(make_server):
    with pytest.raises(ValueError, match="web.mta_sts_mode"):
        make_server(web={"enabled": True, "http_port": 0, "https_port": 0, "mta_sts_mode": "strict"})


def test_forged_forms_and_a_deleted_user_never_break_the_account_page(web):
    import re
    from urllib.parse import urlencode
    from tests.conftest import PASSWORD
    web.add_user("alice@example.org")

    def call(method, path, body=None, cookie=""):
        context = ssl.create_default_context(cafile=web.cafile)
        conn = http.client.HTTPSConnection("127.0.0.1", web.server.web.port("https"), context=context, timeout=10)
        conn.request(method, path, body=body, headers={"Cookie": cookie,
                                                      "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        return response, response.read().decode()

    response, page = call("GET", "/account")
    cookie = response.getheader("Set-Cookie").split(";")[0]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert call("POST", "/account/sign-in", "csrf=%C3%A9t%C3%A9", cookie)[0].status == 403       # not ASCII
    assert call("POST", "/account/sign-in", "&".join(f"f{i}=1" for i in range(50)), cookie)[0].status == 403
    assert call("POST", "/account/sign-in", "x" * 100_000, cookie)[0].status == 403
    response, _ = call("POST", "/account/sign-in",
                       urlencode({"csrf": csrf, "address": "alice@example.org", "password": PASSWORD}), cookie)
    cookie = response.getheader("Set-Cookie").split(";")[0]
    assert "alice@example.org" in call("GET", "/account", cookie=cookie)[1]
    web.store.delete_user("alice@example.org")
    response, page = call("GET", "/account", cookie=cookie)
    assert response.status == 200 and 'name="password"' in page and "alice@example.org" not in page


def test_a_taken_https_port_stops_the_start_naming_the_port(make_server):
    import socket
    from appliance.net import BindError
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(BindError, match=f"127.0.0.1:{port} for https: Address already in use"):
            make_server(web={"https_port": port})
