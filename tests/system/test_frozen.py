"""Smoke test of the frozen binary: what a user does in the first five minutes.

Runs ``dist/kotakpos`` (built by ``build/build.sh``) as a subprocess in a temporary data
folder on offset ports: serve, add a domain and a user with the binary's own CLI, send a
message with swaks, read it back by IMAP and POP3, look at the TUI inside tmux, stop the
server with SIGTERM. The whole module is skipped when the binary has not been built.

The tests share one server and run in file order; the last one stops it.
"""

from __future__ import annotations

import imaplib
import os
import platform
import poplib
import re
import shutil
import signal
import smtplib
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests import dns_zone
from appliance.launch import MALLOC_TUNABLES
from tests.system.process import DEFAULT_PORTS, ServeProcess, children, environment, free_offset, kotakpos_command, run_cli

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "dist" / "kotakpos"

pytestmark = pytest.mark.skipif(not BINARY.exists(), reason="dist/kotakpos is not built (run build/build.sh)")

HOSTNAME = "mail.example.test"
DOMAIN = "example.test"
USER = f"bob@{DOMAIN}"
PASSWORD = "frozen smoke password"
START_TIMEOUT = 60.0   # the first start of a one-file binary unpacks it; a slow CI box needs time


class Frozen:
    """``dist/kotakpos serve`` in a temporary folder, and the binary's CLI on the same folder."""

    def __init__(self, folder: Path, config: str = ""):
        self.folder = folder
        self.data_dir = folder / "data"
        self.data_dir.mkdir()
        # A fixed hostname, so nothing depends on the name of the machine running the test.
        (self.data_dir / "kotakpos.toml").write_text(
            f'[server]\nhostname = "{HOSTNAME}"\nshutdown_grace = 2.0\n{config}', encoding="utf-8")
        self.serve = ServeProcess(self.data_dir, command=[str(BINARY)])
        self.process = self.serve.proc
        self.port = self.serve.port

    def log(self) -> str:
        return self.serve.log

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``dist/kotakpos --data DATA ARGS`` and insist that it succeeded."""
        result = run_cli(*args, data_dir=self.data_dir, input=input, command=[str(BINARY)])
        assert result.returncode == 0, f"kotakpos {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
        return result

    def tls_context(self) -> ssl.SSLContext:
        """Trusts the self-signed certificate the binary made on its first start."""
        return ssl.create_default_context(cafile=str(self.data_dir / "tls" / "cert.pem"))


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    server = Frozen(tmp_path_factory.mktemp("frozen"))
    try:
        server.serve.wait_ready(START_TIMEOUT)
        server.cli("domain", "add", DOMAIN)
        server.cli("user", "add", USER, "--password-stdin", input=PASSWORD + "\n")
        yield server
    finally:
        server.serve.stop()


def wait_for_log(server: Frozen, text: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while text not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    return text in server.log()


@pytest.fixture(scope="module")
def sent_message(frozen):
    """The Subject of a message sent with swaks to the user."""
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed")
    subject = f"frozen smoke {uuid.uuid4().hex}"
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{frozen.port('smtp')}", "--from", "alice@elsewhere.test",
         "--to", USER, "--header", f"Subject: {subject}", "--body", "Sent to the frozen binary.\n"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"swaks failed:\n{result.stdout}{result.stderr}"
    assert re.search(r"^<-  250 .*", result.stdout, re.MULTILINE), result.stdout
    return subject


# -- the tests, in the order a user would go ------------------------------------------------

def test_binary_reports_version():
    result = subprocess.run([str(BINARY), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("kotakpos, version ")


def test_binary_has_every_command_of_the_package():
    frozen_help = subprocess.run([str(BINARY), "--help"], capture_output=True, text=True, timeout=60)
    package_help = subprocess.run([*kotakpos_command(), "--help"], capture_output=True, text=True, timeout=60)
    # click names the program after argv[0]: "kotakpos" frozen, "python -m appliance" from source.
    expected = package_help.stdout.replace("Usage: python -m appliance ", "Usage: kotakpos ")
    assert frozen_help.stdout == expected, "dist/kotakpos is older than the code: run build/build.sh"


def test_serve_opens_every_listener_on_offset_ports(frozen):
    ready_line = next(line for line in frozen.log().splitlines() if ": ready " in line)
    for name in DEFAULT_PORTS:
        assert f"{name}=127.0.0.1:{frozen.port(name)}" in ready_line
    status = frozen.cli("status").stdout
    for name in DEFAULT_PORTS:
        assert re.search(rf"^\s+{name}\s+127\.0\.0\.1:{frozen.port(name)}\s+listening$", status, re.MULTILINE), status


def test_cli_added_the_domain_and_the_user(frozen):
    assert frozen.cli("domain", "list").stdout.split() == [DOMAIN]
    assert frozen.cli("user", "list").stdout.startswith(USER)


def test_dns_prints_the_records_with_the_dkim_keys(frozen):
    # The keys were made by `domain add`: cryptography and dkimpy at work inside the binary.
    records = frozen.cli("dns", DOMAIN).stdout
    assert re.search(rf"^{DOMAIN}\.\s+IN\s+MX\s+10 {HOSTNAME}\.$", records, re.MULTILINE), records
    assert re.search(rf"^\S+\._domainkey\.{DOMAIN}\.\s+IN\s+TXT\s+\"v=DKIM1; k=rsa; p=", records, re.MULTILINE), records


def test_backup_of_the_running_store(frozen):
    target = frozen.folder / "backup.sqlite"
    frozen.cli("backup", str(target))
    assert target.stat().st_size > 0


def test_swaks_delivers_by_smtp(frozen, sent_message):
    # swaks saw 250 after DATA (the fixture checks); the store now holds the message.
    assert re.search(r"^Store: 1 domains, 1 users, 1 messages,", frozen.cli("status").stdout, re.MULTILINE)


def test_imap_reads_the_message(frozen, sent_message):
    with imaplib.IMAP4("127.0.0.1", frozen.port("imap"), timeout=30) as imap:
        imap.starttls(frozen.tls_context())
        imap.login(USER, PASSWORD)
        imap.select("INBOX", readonly=True)
        typ, data = imap.search(None, "SUBJECT", f'"{sent_message}"')
        assert typ == "OK" and len(data[0].split()) == 1, data
        typ, fetched = imap.fetch(data[0], "(BODY.PEEK[])")
        assert typ == "OK"
        raw = fetched[0][1]
    assert f"Subject: {sent_message}".encode() in raw
    assert b"Sent to the frozen binary." in raw


def test_pop3_reads_the_message(frozen, sent_message):
    pop = poplib.POP3("127.0.0.1", frozen.port("pop3"), timeout=30)
    try:
        pop.stls(frozen.tls_context())
        pop.user(USER)
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        assert count == 1
        _, lines, _ = pop.retr(1)
    finally:
        pop.quit()
    raw = b"\r\n".join(lines)
    assert f"Subject: {sent_message}".encode() in raw
    assert b"Sent to the frozen binary." in raw


def test_the_account_page_signs_in_with_its_templates_and_stylesheet(frozen):
    # The templates, the stylesheet and the common-password list are files the binary must carry.
    import http.client
    from urllib.parse import urlencode

    def get(path, body=None, cookie=""):
        conn = http.client.HTTPSConnection("127.0.0.1", frozen.port("https"), context=frozen.tls_context(), timeout=20)
        headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST" if body else "GET", path, body=body, headers=headers)
        response = conn.getresponse()
        return response, response.read().decode()

    response, page = get("/account")
    cookie = response.getheader("Set-Cookie").split(";")[0]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert get("/account/static/account.css")[0].status == 200
    response, _ = get("/account/sign-in", urlencode({"csrf": csrf, "address": USER, "password": PASSWORD}), cookie)
    assert response.status == 303
    response, page = get("/account", cookie=response.getheader("Set-Cookie").split(";")[0])
    assert USER in page and 'id="usage"' in page and "<svg" in page
    assert f"the account page is at https://{HOSTNAME}:{frozen.port('https')}/account" in frozen.log()


def test_dmarc_tells_a_neighbour_under_co_uk_from_the_bank(tmp_path):
    # The Public Suffix List is a data file inside the binary: without it evil.co.uk and
    # bank.co.uk would be one organization and the forgery would pass.
    zone = dns_zone.Zone()
    zone.add("evil.co.uk", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    zone.add("_dmarc.evil.co.uk", "TXT", "v=DMARC1; p=none")
    zone.add("_dmarc.bank.co.uk", "TXT", "v=DMARC1; p=reject")
    dns, address = dns_zone.start(zone)
    server = Frozen(tmp_path, config=f'[dns]\nresolver = "{address}"\n')
    try:
        server.serve.wait_ready(START_TIMEOUT)
        server.cli("domain", "add", DOMAIN)
        server.cli("user", "add", USER, "--password-stdin", input=PASSWORD + "\n")
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.sendmail("eve@evil.co.uk", USER, f"From: ceo@bank.co.uk\r\nTo: {USER}\r\n\r\nPay.\r\n")
            assert refused.value.smtp_code == 550
            assert smtp.sendmail("eve@evil.co.uk", USER, f"From: eve@evil.co.uk\r\nTo: {USER}\r\n\r\nHi.\r\n") == {}
    finally:
        server.serve.stop()
        dns.stop()
    assert "DMARC_REJECT" in server.log()


class Tmux:
    """One command in a private tmux server (-L: a developer's own sessions are never touched),
    in 80x24, the smallest terminal the TUI promises to work in."""

    def __init__(self, command: str):
        if shutil.which("tmux") is None:
            pytest.skip("tmux is not installed")
        self.tmux = ["tmux", "-L", f"kotakpos-frozen-{uuid.uuid4().hex[:8]}"]
        subprocess.run([*self.tmux, "new-session", "-d", "-x", "80", "-y", "24", command], check=True, timeout=30)

    def screen(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p"], capture_output=True, text=True, timeout=30).stdout

    def wait_for_dashboard(self, imap_port: int, timeout: float = 30.0) -> str:
        """The screen once it shows the traffic panel and the IMAP listener on imap_port."""
        imap_row = rf"│ imap +{imap_port} .*listening"
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if "Messages per minute" in screen and re.search(imap_row, screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"no dashboard with the IMAP listener on port {imap_port}:\n{screen}")
            time.sleep(0.25)

    def send_keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", *keys], check=True, timeout=30)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True, timeout=30)


def test_tui_shows_the_dashboard_in_tmux(frozen):
    terminal = Tmux(f"{BINARY} --data {frozen.data_dir} tui")
    try:
        terminal.wait_for_dashboard(frozen.port("imap"))
    finally:
        terminal.close()


def test_serve_with_tui_in_one_process(tmp_path):
    # `serve --tui`: server and TUI in one process; quitting the TUI stops the server cleanly.
    data_dir = tmp_path / "data"
    offset = free_offset()
    exit_file = tmp_path / "exit-status"
    terminal = Tmux(f"{BINARY} serve --data {data_dir} --listen 127.0.0.1 --port-offset {offset} --tui; "
                    f"echo $? > {exit_file}")
    try:
        terminal.wait_for_dashboard(DEFAULT_PORTS["imap"] + offset, timeout=START_TIMEOUT)
        terminal.send_keys("C-q")
        deadline = time.monotonic() + 30
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert exit_file.read_text().strip() == "0"
    finally:
        terminal.close()


def test_sighup_reloads_the_certificate(frozen):
    # systemd's ExecReload sends SIGHUP to the process it started: the one-file
    # bootloader, which must pass it on to the server.
    frozen.process.send_signal(signal.SIGHUP)
    assert wait_for_log(frozen, "reloaded TLS certificate"), frozen.log()
    assert frozen.process.poll() is None


def test_sigterm_stops_the_server_cleanly(frozen):
    frozen.process.send_signal(signal.SIGTERM)
    assert frozen.process.wait(60) == 0, frozen.log()
    assert wait_for_log(frozen, ": stopped", timeout=10), frozen.log()
    log = frozen.log()
    assert "Traceback" not in log


def test_the_binary_runs_two_workers_and_restarts_a_killed_one(tmp_path):
    server = Frozen(tmp_path, "workers = 2\n")
    try:
        server.serve.wait_ready(START_TIMEOUT)
        assert "workers=2" in next(line for line in server.log().splitlines() if ": ready " in line)
        workers = re.findall(r"kotakpos\[(\d+)\]: worker \d serving", server.log())
        assert len(workers) == 2
        # serve ran itself again with the malloc tunable in the bootloader's child, whose pid
        # the bootloader waits for: no second unpacking, no third process
        [supervisor] = children(server.process.pid)
        assert sorted(children(supervisor)) == sorted(int(pid) for pid in workers)
        unpacked = Path(environment(supervisor)["_PYI_APPLICATION_HOME_DIR"])
        if platform.libc_ver()[0] == "glibc" and "GLIBC_TUNABLES" not in os.environ:
            for pid in [supervisor, *children(supervisor)]:
                assert environment(pid).get("GLIBC_TUNABLES") == MALLOC_TUNABLES, pid
        subprocess.run(["kill", "-KILL", workers[1]], check=True)
        assert wait_for_log(server, "started again", timeout=10), server.log()
        deadline = time.monotonic() + 10
        while server.log().count(" serving, pid ") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.log().count(" serving, pid ") == 3, server.log()
        for _ in range(4):  # whichever worker takes it
            with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as smtp:
                assert smtp.noop()[0] == 250
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(60) == 0, server.log()
        assert "Traceback" not in server.log()
        assert not unpacked.exists()  # the bootloader still cleans up after its child
    finally:
        server.serve.stop()
