"""Shared fixtures: a whole Kotakpos server on ephemeral loopback ports in a temp folder.

``server`` is a running server with the domain example.org; ``make_server(...)`` starts
one with config overrides (``make_server(auth={"allow_plaintext": True})``). Tests talk
to it through real sockets: ``server.port("imap")``, and trust ``server.cafile`` for TLS.

In the protocol, interop, reliability and security folders the server is a real
``kotakpos serve`` supervisor with ``[server] workers = 2`` (``ServedServer``, served.py),
as a user runs it. A test there that must reach into the server's objects (its context,
a fake clock, a filter it injects) asks for today's in-process ``Server`` with
``@pytest.mark.in_process(reason=...)``; everywhere else the server is in-process.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest

from appliance.admin.client import AdminClient
from appliance.config import Config, with_overrides
from appliance.net.tls import ensure_certificate
from appliance.server import ADMIN_SOCKET, Server
from appliance.store import DB_NAME, Store
from tests.served import PASSWORD, ClientSide, ServedServer, Spares  # noqa: F401 - PASSWORD: tests import it from here

HOSTNAME = "mail.example.org"
DOMAIN = "example.org"


class _Tracebacks(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.messages.append(record.getMessage())


class RunningServer(ClientSide):
    def __init__(self, data_dir: Path, config: Config):
        self.data_dir = data_dir
        self.config = config
        self._tracebacks = _Tracebacks()
        logging.getLogger("kotakpos").addHandler(self._tracebacks)
        self.server = Server(data_dir, config)
        self.server.start()
        self._admin: AdminClient | None = None

    def tracebacks(self) -> list[str]:
        """What the server logged with a traceback (every thread of it)."""
        return list(self._tracebacks.messages)

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

    @property
    def admin(self) -> AdminClient:
        """A client of the server's admin socket (closed when the test ends)."""
        if self._admin is None:
            self._admin = AdminClient(self.data_dir / ADMIN_SOCKET)
        return self._admin

    def reload_tls(self) -> None:
        """Read the certificate again, as SIGHUP makes it."""
        self.server.reload_tls()

    def stats(self) -> dict:
        """The server's counters since it started."""
        return self.admin.status()["stats"]

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        self.server.stop()
        logging.getLogger("kotakpos").removeHandler(self._tracebacks)


def listed_session(server, listener: str, timeout: float = 10.0, **fields) -> dict:
    """The one session of ``listener`` in the admin's list, once it shows ``fields``
    (``last_command="NOOP"``, or a test of the value): a worker publishes its sessions a few
    times a second."""
    deadline = time.monotonic() + timeout
    while True:
        sessions = [s for s in server.admin.sessions() if s["listener"] == listener]
        if len(sessions) == 1 and all(v(sessions[0][k]) if callable(v) else sessions[0][k] == v
                                      for k, v in fields.items()):
            return sessions[0]
        assert time.monotonic() < deadline, f"no one {listener} session with {fields}: {sessions}"
        time.sleep(0.02)


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


SERVED_FOLDERS = ("protocol", "interop", "reliability", "security")
SERVED_WORKERS = 2


def pytest_collection_modifyitems(items):
    for item in items:
        marker = item.get_closest_marker("in_process")
        if marker is not None and not (marker.kwargs.get("reason") or marker.args):
            raise pytest.UsageError(f"{item.nodeid}: in_process needs a reason")


def served(request) -> bool:
    """Whether this test's server is a real supervisor with workers (see the module's docstring)."""
    folder = Path(request.node.path).relative_to(Path(__file__).parent).parts[0]
    return folder in SERVED_FOLDERS and request.node.get_closest_marker("in_process") is None


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory) -> Path:
    """A migrated, empty store file: a served server's folder starts with a copy of it, as at
    its second start, and its supervisor does not build the schema again for every test."""
    folder = tmp_path_factory.mktemp("empty-store")
    Store.in_folder(folder, indexer=False).close()
    return folder / DB_NAME


@pytest.fixture(scope="session")
def _spares(tmp_path_factory):
    spares = Spares(lambda: tmp_path_factory.mktemp("served"))
    yield spares
    spares.close()


@pytest.fixture
def make_server(request, tmp_path, _certificate):
    started: list = []

    def prepare(folder: Path) -> None:
        tls_dir = folder / "tls"
        if not (tls_dir / "cert.pem").exists():
            tls_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(_certificate[0], tls_dir / "cert.pem")
            shutil.copy(_certificate[1], tls_dir / "key.pem")
            (tls_dir / "key.pem").chmod(0o600)

    def start(data_dir: Path | None = None, **sections) -> RunningServer | ServedServer:
        if not served(request):
            folder = data_dir or tmp_path / f"data{len(started)}"
            prepare(folder)
            running = RunningServer(folder, test_config(**sections))
        else:
            empty_store = request.getfixturevalue("_empty_store")

            def prepare_served(folder: Path) -> None:
                prepare(folder)
                if not (folder / DB_NAME).exists():
                    shutil.copy(empty_store, folder / DB_NAME)

            config = test_config(**sections)
            if "workers" not in sections.get("server", {}):
                config = with_overrides(config, server={"workers": SERVED_WORKERS})
            if data_dir is None:
                running = request.getfixturevalue("_spares").take(config, prepare_served)
            else:
                prepare_served(data_dir)
                running = ServedServer(data_dir, config).wait_ready()
        started.append(running)
        return running

    yield start
    for running in started:
        if isinstance(running, ServedServer):
            request.getfixturevalue("_spares").retire(running)
        else:
            running.stop()


@pytest.fixture
def server(make_server) -> RunningServer:
    running = make_server()
    running.store.add_domain(DOMAIN)
    return running
