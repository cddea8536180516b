"""TLS and secrets: only TLS 1.2 and newer with forward-secret AEAD suites, on every TLS
port and after every STARTTLS; a private key others can read stops the server at start;
no password or AUTH payload ever reaches the log, the admin socket or the TUI's data.
"""

from __future__ import annotations

import base64
import imaplib
import json
import poplib
import smtplib
import socket
import ssl
import threading
import time

import pytest

from appliance.admin.client import AdminClient
from appliance.store import Store
from tests.system.process import ServeProcess

IMPLICIT = ["smtps", "pop3s", "imaps"]
STARTTLS = {"smtp": b"EHLO x\r\nSTARTTLS\r\n", "submission": b"EHLO x\r\nSTARTTLS\r\n",
            "pop3": b"STLS\r\n", "imap": b"a STARTTLS\r\n"}


def old_tls_client() -> ssl.SSLContext:
    """A client that offers only TLS 1.0/1.1 — and can, if this OpenSSL still allows it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot offer TLS 1.1 at all")
    return context


def _old_tls_works_at_all(cert: str, key: str) -> bool:
    """Control: the old client completes a TLS 1.1 handshake with a server that allows it,
    so a refusal by Kotakpos is Kotakpos's doing, not the client library's."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1
    server_ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    result = {}

    def serve():
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                result["version"] = tls.version()
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=5) as raw:
            with old_tls_client().wrap_socket(raw) as tls:
                version = tls.version()
    except (ssl.SSLError, OSError):
        version = None
    thread.join(5)
    listener.close()
    return version in ("TLSv1", "TLSv1.1")


def _upgrade(server, listener: str) -> socket.socket:
    """Plain connection up to the server's "go ahead" for STARTTLS/STLS."""
    sock = server.connect(listener)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(STARTTLS[listener])
    while True:
        line = reader.readline()
        if line.startswith((b"220 ", b"+OK", b"a OK")):
            return sock
        assert line and not line.startswith((b"5", b"-ERR", b"a NO", b"a BAD")), line


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")  # deprecated on purpose
def test_tls_below_1_2_is_refused_on_every_tls_port_and_after_starttls(server):
    tls_dir = server.data_dir / "tls"
    if not _old_tls_works_at_all(str(tls_dir / "cert.pem"), str(tls_dir / "key.pem")):
        pytest.skip("this OpenSSL refuses TLS 1.1 even when both sides allow it")
    refused = []
    for listener in IMPLICIT + list(STARTTLS):
        raw = server.connect(listener) if listener in IMPLICIT else _upgrade(server, listener)
        with raw, pytest.raises((ssl.SSLError, OSError)):
            old_tls_client().wrap_socket(raw).do_handshake()
        refused.append(listener)
    # and the modern ones work, with forward-secret AEAD suites only
    for listener, version in (("imaps", ssl.TLSVersion.TLSv1_2), ("smtps", ssl.TLSVersion.TLSv1_3)):
        context = server.tls_context()
        context.minimum_version = context.maximum_version = version
        with context.wrap_socket(server.connect(listener), server_hostname="mail.example.org") as tls:
            name, protocol, _ = tls.cipher()
            assert protocol == version.name.replace("v1_", "v1.")
            assert "GCM" in name or "CHACHA20" in name
            assert version is ssl.TLSVersion.TLSv1_3 or name.startswith(("ECDHE", "DHE"))
    print(f"\nTLS 1.0/1.1 refused on {', '.join(refused)}; TLS 1.2 and 1.3 with AEAD suites accepted")


def test_a_private_key_others_can_read_stops_the_server(tmp_path):
    data = tmp_path / "data"
    first = ServeProcess(data)
    first.wait_ready()
    assert first.terminate() == 0
    key = data / "tls" / "key.pem"
    key.chmod(0o644)
    second = ServeProcess(data)
    try:
        with pytest.raises(RuntimeError) as failed:
            second.wait_ready()
    finally:
        second.kill()
    assert second.proc.returncode not in (0, None)
    assert f"chmod 600 {key}" in str(failed.value)


# -- secrets --------------------------------------------------------------------------------

USER = "alice@example.org"
SECRET = "Sekr1t-Passw0rd-4-grep"
WRONG = "Wr0ng-Guess-4-grep"


def secret_forms(user: str, password: str) -> list[bytes]:
    """The password and every encoding an AUTH exchange carries it in."""
    raw = password.encode()
    forms = [raw, base64.b64encode(raw), base64.b64encode(b"\0" + user.encode() + b"\0" + raw),
             base64.b64encode(user.encode() + b"\0" + user.encode() + b"\0" + raw)]
    # base64 of the password inside a longer token: any of the three alignments
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)[4:-4]
        forms.append(encoded)
    return forms


def busy_mix(proc: ServeProcess, password: str) -> None:
    """Every way a password crosses the wire, for the right and a wrong password."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    for pw in (password, WRONG):
        ok = pw == password
        for mechanism in ("PLAIN", "LOGIN"):
            with smtplib.SMTP("127.0.0.1", proc.port("submission"), timeout=10) as smtp:
                smtp.starttls(context=context)
                smtp.ehlo()
                smtp.user, smtp.password = USER, pw
                try:
                    smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"),
                              initial_response_ok=mechanism == "PLAIN")
                    smtp.sendmail(USER, [USER], f"Subject: mix\r\n\r\n{mechanism}\r\n")
                    assert ok, "a wrong password was accepted"
                except smtplib.SMTPAuthenticationError:
                    assert not ok
        with smtplib.SMTP_SSL("127.0.0.1", proc.port("smtps"), timeout=10, context=context) as smtp:
            try:
                smtp.login(USER, pw)
                assert ok, "a wrong password was accepted"
            except smtplib.SMTPAuthenticationError:
                assert not ok
        imap = imaplib.IMAP4("127.0.0.1", proc.port("imap"), timeout=10)
        imap.starttls(context)
        try:
            imap.login(USER, pw)
            imap.select("INBOX")
            imap.fetch("1:*", "(FLAGS)")
            assert ok, "a wrong password was accepted"
        except imaplib.IMAP4.error:
            assert not ok
        imap.shutdown()
        imap = imaplib.IMAP4_SSL("127.0.0.1", proc.port("imaps"), ssl_context=context, timeout=10)
        try:
            imap.authenticate("PLAIN", lambda _: f"\0{USER}\0{pw}".encode())
            assert ok, "a wrong password was accepted"
        except imaplib.IMAP4.error:
            assert not ok
        imap.shutdown()
        pop = poplib.POP3_SSL("127.0.0.1", proc.port("pop3s"), context=context, timeout=10)
        try:
            pop.user(USER)
            pop.pass_(pw)
            pop.stat()
            assert ok, "a wrong password was accepted"
        except poplib.error_proto:
            assert not ok
        pop.close()
        pop = poplib.POP3("127.0.0.1", proc.port("pop3"), timeout=10)
        pop.stls(context)
        token = base64.b64encode(f"\0{USER}\0{pw}".encode()).decode()
        try:
            pop._shortcmd(f"AUTH PLAIN {token}")
            assert ok, "a wrong password was accepted"
        except poplib.error_proto:
            assert not ok
        pop.close()


def test_no_password_or_auth_payload_reaches_log_admin_or_tui_data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "kotakpos.toml").write_text('[server]\nlog_level = "debug"\nlog_file = "kotakpos.log"\n[auth]\nfail_delay_max = 0.2\n'
                                        '[dns]\nresolver = "none"\n')
    store = Store.in_folder(data)
    store.add_domain("example.org")
    store.add_user(USER, SECRET)
    store.close()
    proc = ServeProcess(data)
    try:
        proc.wait_ready()
        admin = AdminClient(data / "admin.sock")
        events = []
        stream = admin.subscribe()

        def collect():
            try:
                while (event := stream.get(timeout=30)) is not None:
                    events.append(event)
            except Exception:
                pass

        collector = threading.Thread(target=collect, daemon=True)
        collector.start()
        # Sessions held open while the admin looks: what the TUI's session list shows.
        held_imap = imaplib.IMAP4_SSL("127.0.0.1", proc.port("imaps"), timeout=10,
                                      ssl_context=ssl._create_unverified_context())
        held_imap.login(USER, SECRET)
        busy_mix(proc, SECRET)
        seen_by_admin = [admin.sessions(), admin.status(), admin.log_tail(2000), admin.blocked(),
                         admin.users(), admin.traffic()]
        held_imap.logout()
        time.sleep(0.5)
        seen_by_admin.append(admin.log_tail(2000))
        stream.close()
        collector.join(5)
        admin.close()
    finally:
        proc.terminate()
    haystacks = {
        "stderr log": proc.log.encode(),
        "log file": (data / "kotakpos.log").read_bytes(),
        "admin replies": json.dumps(seen_by_admin).encode(),
        "admin events": json.dumps(events).encode(),
        "database": b"".join(p.read_bytes() for p in data.glob("*.sqlite*")),
    }
    assert b"auth failed" in haystacks["log file"] and b"auth ok" in haystacks["log file"]
    assert events and len(proc.log) > 2000, "the run left too little to search"
    needles = secret_forms(USER, SECRET) + secret_forms(USER, WRONG)
    for where, text in haystacks.items():
        for needle in needles:
            assert needle not in text, f"{needle!r} found in the {where}"
    print(f"\nsecrets: {len(needles)} forms of two passwords searched in {len(haystacks)} places "
          f"({sum(map(len, haystacks.values()))} bytes, {len(events)} admin events): never found")
