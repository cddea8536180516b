"""A real ``kotakpos serve`` supervisor with worker processes, behind the same API as the
in-process ``RunningServer`` of conftest.py (ports by name, ``.store``, ``.cafile``,
``.add_user``, ``.data_dir``, ``.config``, ``.stop()``).

The test configuration is written into the data folder's kotakpos.toml. ``.store`` is a
Store opened on the same file in the test process: after every call of it that committed,
the server is told through the admin socket's ``notify``, as the CLI does after its own
writes, so the next session on any worker already sees the change.

Starting a supervisor and its workers costs about a second of CPU; ``Spares`` starts the
next server of the same configuration while a test runs, so a test rarely waits for one.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from appliance.admin.client import AdminClient, ServerNotRunning
from appliance.config import Config
from appliance.launch import MALLOC_TUNABLES
from appliance.server import ADMIN_SOCKET
from appliance.store import Store

PASSWORD = "correct horse battery staple"  # every test user's, unless a test gives one
PR_SET_PDEATHSIG = 1  # Linux prctl(2)
READY = re.compile(r"\bready\b(?P<ports>.*)")


def config_text(config: Config) -> str:
    """The whole ``config`` as kotakpos.toml text (tables, such as [mta.routes], after each section's keys)."""
    lines = []
    for section in dataclasses.fields(config):
        values = getattr(config, section.name)
        lines.append(f"[{section.name}]")
        tables = []
        for f in dataclasses.fields(values):
            value = getattr(values, f.name)
            if isinstance(value, dict):
                tables.append((f.name, value))
            else:
                lines.append(f"{f.name} = {_toml(value)}")
        for name, table in tables:
            lines.append(f"[{section.name}.{name}]")
            lines += [f"{_toml(key)} = {_toml(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _stop_with_the_tests() -> None:
    """In the child before exec: the kernel sends SIGTERM if pytest dies (killed, ^C twice)
    before it stopped the server, so no server outlives the run."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class NotifyingStore:
    """The test process's Store on the server's file. Each call first reads the change journal
    (so no answer comes from a cache older than the server's last commit); a call that
    committed rings the server."""

    def __init__(self, store: Store, data_dir: Path):
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_admin_socket", data_dir / ADMIN_SOCKET)
        object.__setattr__(self, "_lock", threading.Lock())

    def __setattr__(self, name: str, value) -> None:
        # A test that replaces a store method means the server's: it would change nothing there.
        raise AttributeError(f"cannot replace store.{name} of a served server (it runs in other processes): "
                             "mark the test in_process(reason)")

    def __getattr__(self, name: str):
        attr = getattr(self._store, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args, **kwargs):
            # hear the server's commits first: what this process cached (the accounts, a
            # mailbox's state) must not be older than what the server already answered
            self._store.catch_up()
            before = self._store.db.commits
            try:
                return attr(*args, **kwargs)
            finally:
                if self._store.db.commits != before:
                    self.notify_server()
        return call

    def notify_server(self) -> None:
        with self._lock:
            try:
                client = AdminClient(self._admin_socket)
            except ServerNotRunning:
                return  # stopped: a later start reads the file as it is
            try:
                client.notify()
            finally:
                client.close()


class ClientSide:
    """What a test does with a server however it runs: ``port(name)``, ``store`` and
    ``cafile`` come from the class that has the server."""

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


class ServedServer(ClientSide):
    """``kotakpos serve --data DIR`` in a child process, ready (its workers all serving)."""

    def __init__(self, data_dir: Path, config: Config):
        self.data_dir = Path(data_dir)
        self.config = config
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "kotakpos.toml").write_text(config_text(config))
        self.log_lines: list[str] = []
        self._ports: dict[str, int] = {}
        self._ready = threading.Event()
        self._store: NotifyingStore | None = None
        self._admin: AdminClient | None = None
        # The malloc tunable given as the systemd unit gives it, so that `serve` need not run
        # itself again to set it (tests/system/test_workers.py checks that it does).
        env = {**os.environ, "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES") or MALLOC_TUNABLES}
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance", "serve", "--data", str(self.data_dir)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, preexec_fn=_stop_with_the_tests, env=env)
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.log_lines.append(line)
            ready = READY.search(line)
            if ready and not self._ready.is_set():
                for name, address in re.findall(r"(\w+)=(\S+)", ready["ports"]):
                    if name not in ("admin", "workers"):
                        self._ports[name] = int(address.rpartition(":")[2])
                self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    def wait_ready(self, timeout: float = 60.0) -> "ServedServer":
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.02):
            if self.proc.poll() is not None:
                self.proc.wait()
                time.sleep(0.1)  # the rest of its log
                raise RuntimeError(f"kotakpos serve exited with {self.proc.returncode}:\n{self.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"kotakpos serve not ready after {timeout}s:\n{self.log}")
        return self

    def tracebacks(self) -> list[str]:
        """What the server logged with a traceback (every process of it): each such line of its log."""
        lines = self.log_lines[:]
        return [lines[n - 1].strip() for n, line in enumerate(lines) if line.startswith("Traceback") and n > 0]

    @property
    def ctx(self):
        raise AttributeError("a served server runs in other processes: use its admin socket (server.admin), "
                             "or mark the test in_process(reason)")

    @property
    def store(self) -> NotifyingStore:
        if self._store is None:
            self._store = NotifyingStore(Store.in_folder(self.data_dir, indexer=False), self.data_dir)
        return self._store

    @property
    def admin(self) -> AdminClient:
        """A client of the server's admin socket, as the CLI and the TUI use it."""
        if self._admin is None:
            self._admin = AdminClient(self.data_dir / ADMIN_SOCKET)
        return self._admin

    def reload_tls(self) -> None:
        """SIGHUP to the supervisor: every worker reads the config and certificate again
        (it returns at once; the workers take their time)."""
        os.kill(self.proc.pid, signal.SIGHUP)

    def stats(self) -> dict:
        """The server's counters since it started, summed over its workers."""
        return self.admin.status()["stats"]

    @property
    def cafile(self) -> str:
        return str(self.data_dir / self.config.tls.cert_file)

    def port(self, name: str) -> int:
        return self._ports[name]

    def terminate(self) -> None:
        """Ask the supervisor to stop (SIGTERM), without waiting for it."""
        self._close_clients()
        if self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        """SIGTERM, and wait until every worker stopped and the data folder is free."""
        self.terminate()
        grace = self.config.server.shutdown_grace
        try:
            self.proc.wait(grace + 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _close_clients(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._store is not None:
            self._store._store.close()
            self._store = None


class Spares:
    """Servers started ahead, in their own folders: one for each of the configurations asked
    for again lately (a module's fixture; not one that names a test's own sink or DNS port)."""

    KEEP = 2  # configurations kept warm: the default one and a module's own

    def __init__(self, folder_factory):
        self._folder = folder_factory
        self._spares: dict[str, ServedServer] = {}
        self._stopping: list[ServedServer] = []
        self._asked: set[str] = set()

    def take(self, config: Config, prepare) -> ServedServer:
        """A ready server of ``config``; ``prepare(folder)`` readies a new data folder before its start."""
        key = config_text(config)
        served = self._spares.pop(key, None) or self._start(config, prepare)
        if key in self._asked:
            while len(self._spares) >= self.KEEP:
                self.retire(self._spares.pop(next(iter(self._spares))))
            self._spares[key] = self._start(config, prepare)
        self._asked.add(key)
        return served.wait_ready()

    def _start(self, config: Config, prepare) -> ServedServer:
        folder = self._folder()
        prepare(folder)
        return ServedServer(folder, config)

    def retire(self, served: ServedServer) -> None:
        """Stop a server without waiting for it (a test's teardown needs nothing of it any more)."""
        served.terminate()
        self._stopping.append(served)
        self._stopping = [s for s in self._stopping if s.proc.poll() is None]

    def close(self) -> None:
        for served in self._spares.values():
            served.terminate()
        for served in [*self._spares.values(), *self._stopping]:
            served.stop()
        self._spares.clear()
        self._stopping.clear()
