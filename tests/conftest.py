"""Shared fixtures: a whole Kotakpos server on ephemeral loopback ports in a temp folder.

``server`` is a running server with the domain example.org; ``make_server(...)`` starts
one with config overrides (``make_server(auth={"allow_plaintext": True})``). Tests talk
to it through real sockets: ``server.port("imap")``, and trust ``server.cafile`` for TLS.
"""

from __future__ import annotations

import shutil
import socket
import ssl
from pathlib import Path

import pytest

from appliance.config import Config, with_overrides
from appliance.net.tls import ensure_certificate
from appliance.server import Server

HOSTNAME = "mail.example.org"
DOMAIN = "example.org"
PASSWORD = "correct horse battery staple"


class RunningServer:
    def __init__(self, data_dir: Path, config: Config):
        self.data_dir = data_dir
        self.config = config
        self.server = Server(data_dir, config)
        self.server.start()

    @property
    def ctx(self):
        return self.server.ctx

    @property
    def store(self):
        return self.server.ctx.store

    @property
    def cafile(self) -> str:
        return str(self.data_dir / self.config.tls.cert_file)

    def port(self, name: str) -> int:
        return self.server.port(name)

    def address(self, name: str) -> tuple[str, int]:
        return ("127.0.0.1", self.port(name))

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        return ssl.create_default_context(cafile=self.cafile)

    def add_user(self, address: str, password: str = PASSWORD, quota: int = 0):
        domain = address.rpartition("@")[2]
        if not self.store.is_local_domain(domain):
            self.store.add_domain(domain)
        return self.store.add_user(address, password, quota)

    def connect(self, name: str, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection(self.address(name), timeout=timeout)

    def stop(self) -> None:
        self.server.stop()


def test_config(**sections) -> Config:
    """Every port ephemeral (0), loopback only, a fixed hostname; overrides per section."""
    base = with_overrides(
        Config(),
        server={"hostname": HOSTNAME, "listen": ["127.0.0.1"], "port_offset": 0, "shutdown_grace": 2.0},
        ports={name: 0 for name in ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps",
                                    "managesieve")},
        dns={"resolver": "none"},  # never ask DNS beyond loopback; DNS tests run their own server on loopback
        web={"http_port": 0, "https_port": 0},
    )
    return with_overrides(base, **sections) if sections else base


@pytest.fixture(scope="session")
def _certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    ensure_certificate(cert, key, HOSTNAME)
    return cert, key


@pytest.fixture
def make_server(tmp_path, _certificate):
    started: list[RunningServer] = []

    def start(data_dir: Path | None = None, **sections) -> RunningServer:
        folder = data_dir or tmp_path / f"data{len(started)}"
        tls_dir = folder / "tls"
        if not (tls_dir / "cert.pem").exists():
            tls_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(_certificate[0], tls_dir / "cert.pem")
            shutil.copy(_certificate[1], tls_dir / "key.pem")
            (tls_dir / "key.pem").chmod(0o600)
        running = RunningServer(folder, test_config(**sections))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def server(make_server) -> RunningServer:
    running = make_server()
    running.store.add_domain(DOMAIN)
    return running
