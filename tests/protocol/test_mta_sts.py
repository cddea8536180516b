"""MTA-STS (RFC 8461): the policy is fetched over HTTPS, cached, and limits the MX hosts used."""

from __future__ import annotations

import http.server
import ssl
import threading

import pytest
from dnslib import RR
from dnslib.server import DNSLogger, DNSServer

from appliance.net.tls import ensure_certificate
from tests.protocol.mta_helpers import FAST_RETRY, queue, wait_queue_empty, wait_until
from tests.protocol.mta_sink import Sink
from tests.protocol.test_mta_mx import Zone

SENDER = "alice@example.org"

# The preferred MX (rogue) is not in the policy; the listed one is mail.example.org, whose
# certificate the sink presents.
STS_ZONE = """
sts.test.            60 IN MX 5  rogue.sts.test.
sts.test.            60 IN MX 10 mail.example.org.
rogue.sts.test.      60 IN A  127.0.0.1
mail.example.org.    60 IN A  127.0.0.1
_mta-sts.sts.test.   60 IN TXT "v=STSv1; id=2026112701"
mta-sts.sts.test.    60 IN A  127.0.0.1
"""


class PolicyServer:
    """HTTPS on loopback serving one policy text, with a certificate for mta-sts.sts.test."""

    def __init__(self, folder, policy: str):
        cert, key = folder / "sts-cert.pem", folder / "sts-key.pem"
        ensure_certificate(cert, key, "mta-sts.sts.test")
        self.cert = cert
        self.policy = policy
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                body = outer.policy.encode()
                status = 200 if self.path == "/.well-known/mta-sts.txt" else 404
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sts_world(make_server, tmp_path, _certificate):
    """DNS, the policy web server, and an MX sink that records which name each client asked for (SNI)."""
    zone = Zone()
    zone.records = RR.fromZone(STS_ZONE)
    dns = DNSServer(zone, address="127.0.0.1", port=0, logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    dns.start_thread()
    names: list[str] = []
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*_certificate)
    tls.sni_callback = lambda sslobj, name, ctx: names.append(name)
    sink = Sink(tls_context=tls)
    made = []

    def start(policy: str):
        web = PolicyServer(tmp_path, policy)
        made.append(web)
        bundle = tmp_path / "trusted.pem"
        bundle.write_bytes(_certificate[0].read_bytes() + web.cert.read_bytes())
        server = make_server(dns={"resolver": f"127.0.0.1:{dns.server.server_address[1]}"}, mta={"remote_port": sink.port,
                                  "mta_sts_port": web.port, "tls_cafile": str(bundle), "retry_intervals": FAST_RETRY})
        server.add_user(SENDER)
        return server, sink, names, web

    yield start
    for web in made:
        web.close()
    sink.close()
    dns.stop()


ENFORCE = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmax_age: 86400\r\n"


def test_enforce_uses_only_listed_mx_hosts_with_verified_tls(sts_world):
    server, sink, names, web = sts_world(ENFORCE)
    queue(server, SENDER, ["bob@sts.test"])
    [got] = sink.wait_for(1)
    assert got.tls
    assert names == ["mail.example.org"], "the preferred but unlisted MX must not be used"
    assert web.requests == 1
    assert (server.data_dir / "mta-sts.json").exists()


def test_the_policy_is_cached_and_still_applies_when_its_server_is_gone(sts_world):
    server, sink, names, web = sts_world(ENFORCE)
    queue(server, SENDER, ["bob@sts.test"])
    sink.wait_for(1)
    web.close()
    queue(server, SENDER, ["carol@sts.test"])
    sink.wait_for(2)
    wait_queue_empty(server)
    assert names == ["mail.example.org", "mail.example.org"]
    assert web.requests == 1


def test_testing_mode_only_reports(sts_world):
    server, sink, names, _ = sts_world(ENFORCE.replace("enforce", "testing"))
    queue(server, SENDER, ["bob@sts.test"])
    sink.wait_for(1)
    assert names == ["rogue.sts.test"]


def test_enforce_with_no_matching_mx_keeps_the_mail_queued(sts_world):
    server, sink, _, _ = sts_world(ENFORCE.replace("mail.example.org", "*.elsewhere.test"))
    [queue_id] = queue(server, SENDER, ["bob@sts.test"])
    entry = wait_until(lambda: (e := server.store.queue_entry(queue_id)).attempts >= 1 and e, what="an attempt")
    assert "MTA-STS" in entry.last_error and entry.state == "queued"
    assert sink.messages == []
