"""ACME against Pebble (Debian's ACME test CA) on loopback: issuance by HTTP-01, renewal, fallback."""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import time

import dnslib
import pytest
from cryptography import x509
from dnslib.server import DNSLogger, DNSServer

from appliance.acme.manager import certificate_info
from appliance.net.tls import ensure_certificate
from tests.dnscheck.test_check import Zone
from tests.migrate.fixtures import cli

HOST = "mail.example.org"

pytestmark = pytest.mark.skipif(shutil.which("pebble") is None, reason="pebble (Debian package) is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=60.0, what="it"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def pebble(tmp_path):
    """Pebble with its own loopback DNS naming mail.example.org 127.0.0.1; yields (directory, CA file, HTTP port)."""
    zone = Zone()
    zone.add(HOST, "A", dnslib.A("127.0.0.1"))
    dns = DNSServer(zone, address="127.0.0.1", port=0, logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    dns.start_thread()
    cert, key = tmp_path / "pebble-cert.pem", tmp_path / "pebble-key.pem"
    ensure_certificate(cert, key, "localhost")  # names 127.0.0.1 too
    api, http_port = free_port(), free_port()
    config = tmp_path / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{api}", "managementListenAddress": f"127.0.0.1:{free_port()}",
        "certificate": str(cert), "privateKey": str(key), "httpPort": http_port, "tlsPort": free_port(),
        "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    log = open(tmp_path / "pebble.log", "wb")
    proc = subprocess.Popen(["pebble", "-config", str(config), "-dnsserver", f"127.0.0.1:{dns.server.server_address[1]}"],
                            stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})

    def listening():
        try:
            socket.create_connection(("127.0.0.1", api), timeout=0.5).close()
            return True
        except OSError:
            return False

    try:
        wait_for(listening, 20, "pebble")
        yield f"https://127.0.0.1:{api}/dir", str(cert), http_port
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        dns.stop()


def served_certificate(srv) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(srv.address("imaps"), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=HOST) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def test_issued_by_http01_served_renewed_30_days_before_expiry_and_shown_in_status(make_server, pebble):
    directory, ca_file, http_port = pebble
    srv = make_server(web={"http_port": http_port, "https_port": 0},
                      acme={"enabled": True, "directory": directory, "ca_file": ca_file, "retry_interval": 1.0})
    manager = srv.server.acme
    wait_for(lambda: not certificate_info(manager.tls.cert_path).self_signed, 90, "the ACME certificate")
    first = served_certificate(srv)
    assert "Pebble" in first.issuer.rfc4514_string()
    assert HOST in first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)

    not_after = first.not_valid_after_utc
    assert manager.renew_if_due(now=not_after - datetime.timedelta(days=31))
    assert served_certificate(srv).serial_number == first.serial_number  # not due yet
    assert manager.renew_if_due(now=not_after - datetime.timedelta(days=29))
    assert served_certificate(srv).serial_number != first.serial_number  # renewed and reloaded live

    out = cli(srv.data_dir, "status")
    assert "ACME: issued by" in out and "Pebble" in out and "WARNING" not in out


def test_a_failing_ca_leaves_the_self_signed_certificate_with_a_loud_warning(make_server, caplog):
    caplog.set_level(logging.WARNING, logger="kotakpos.acme")
    srv = make_server(web={"http_port": 0, "https_port": 0},
                      acme={"enabled": True, "directory": f"https://127.0.0.1:{free_port()}/dir", "retry_interval": 60.0})
    manager = srv.server.acme
    wait_for(lambda: manager.last_error, 30, "the failed order")
    assert certificate_info(manager.tls.cert_path).self_signed
    assert any("SELF-SIGNED" in r.getMessage() for r in caplog.records)
    out = cli(srv.data_dir, "status")
    assert "ACME: WARNING: no certificate from https://127.0.0.1:" in out and "SELF-SIGNED" in out
    assert "TLS certificate valid until" in out
