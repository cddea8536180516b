"""Kotakpos as a benchmark target: a private server in a temporary data folder on loopback.

    k = Kotakpos(users=[("alice@bench.test", "pw")])
    k.load_mailbox("alice@bench.test", mailbox_messages(10_000))   # before start: store API
    with k:
        ...  # k.port("smtp"), k.port("imap"), k.port("pop3"); k.pid for memory
    k2 = k.copy(workers=2)      # before start: the same loaded store, served by 2 workers

`workers` is written as `[server] workers`; above 1, k.pid is the supervisor and the workers
are its children, so the process tree under k.pid (bench/peers.py's cpu_seconds, memory_kib)
holds the whole server.

The server runs as `python -m appliance serve --data DIR` in its own process (so its memory is
its own), with a config that listens on 127.0.0.1 only, at a port offset whose seven ports are
free, and that allows plaintext passwords from loopback — the same footing as the private
Dovecot (no TLS on either side). Mailboxes are bulk-loaded through `Store.deliver` before the
server starts, with many threads so that group commit batches the fsyncs.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.peers import Instance

REPO = Path(__file__).resolve().parent.parent
PORT_NAMES = ("smtp", "submission", "smtps", "pop3", "pop3s", "imap", "imaps")
BASE_PORTS = {"smtp": 25, "submission": 587, "smtps": 465, "pop3": 110, "pop3s": 995, "imap": 143, "imaps": 993,
              "managesieve": 4190}


_TAKEN: set[int] = set()  # offsets given to instances of this run that may not listen yet


def _free_offset() -> int:
    """An offset at which all the standard ports plus it are free on 127.0.0.1."""
    for offset in range(31000, 60000, 17):
        ports = [p + offset for p in BASE_PORTS.values()]
        if max(ports) > 65535:
            break
        if offset not in _TAKEN and all(_port_free(p) for p in ports):
            _TAKEN.add(offset)
            return offset
    raise RuntimeError("no free port offset for Kotakpos")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Kotakpos(Instance):
    """One private Kotakpos server; see the module docstring."""

    def __init__(self, users: list[tuple[str, str]], domain: str = "bench.test",
                 routes: dict[str, tuple[str, int]] | None = None, extra_config: str = "",
                 workdir: str | None = None, workers: int = 1):
        self.users = list(users)
        self.workers = workers
        self.domain = domain
        self.routes = routes or {}
        self.extra_config = extra_config  # more TOML, e.g. to switch filters off
        self._own_dir = workdir is None
        self.data = Path(workdir or tempfile.mkdtemp(prefix="bench-kotakpos-"))
        self.offset = _free_offset()
        self.proc: subprocess.Popen | None = None
        self._store = None
        self._user_ids: dict[str, int] = {}
        self._prepared = False  # the store holds the domain and the users

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def port(self, name: str) -> int:
        return BASE_PORTS[name] + self.offset

    # -- preparation (before the server runs) --------------------------------------------
    def _write_config(self) -> None:
        lines = [
            "# Benchmark instance written by bench/kotakpos.py.",
            "[server]",
            'hostname = "kotakpos.bench.test"',
            'listen = ["127.0.0.1"]',
            f"port_offset = {self.offset}",
            f"workers = {self.workers}",
            "max_connections = 3000",  # room for the 1,000 IDLE clients and the load generators
            # log_level stays at info: Postfix and Dovecot also log every session.
            "[auth]",
            "allow_plaintext = true",
            'trusted_networks = ["127.0.0.0/8"]',  # as Postfix's mynetworks: loopback may relay
            "[dns]",
            'resolver = "none"',  # loopback only; the Postfix peer checks no SPF either
        ]
        if self.routes:
            lines.append("[mta.routes]")
            lines += [f"{_toml_str(d)} = {_toml_str(f'{h}:{p}')}" for d, (h, p) in self.routes.items()]
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / "kotakpos.toml").write_text("\n".join(lines) + "\n" + self.extra_config)

    def _open_store(self):
        if self.proc is not None:
            raise RuntimeError("bulk loading goes through the store before the server starts")
        if self._store is None:
            sys.path.insert(0, str(REPO))
            from appliance.store import Store
            self._write_config()
            self._store = Store.in_folder(self.data)
            if not self._prepared:
                self._store.add_domain(self.domain)
                for address, password in self.users:
                    self._user_ids[address] = self._store.add_user(address, password).id
                self._prepared = True
        return self._store

    def copy(self, workers: int) -> "Kotakpos":
        """Another instance over a copy of this one's data folder, served by `workers`.

        Before either starts: loading 80,000 messages once and copying the files is quicker
        than loading them twice, and both sides then hold the very same store."""
        self._settle()
        other = Kotakpos(self.users, self.domain, self.routes, self.extra_config, workers=workers)
        shutil.copytree(self.data, other.data, dirs_exist_ok=True)
        other._user_ids, other._prepared = dict(self._user_ids), True
        return other

    def _settle(self) -> None:
        """Close the store once the full-text index has caught up with what was loaded."""
        self._open_store()
        # The full-text index is built by a thread once deliveries pause; have it finish here,
        # so the server does not spend the timed runs indexing what was bulk-loaded.
        if not self._store.search_index.wait_caught_up(timeout=1200):
            raise RuntimeError("the search index did not catch up with the bulk load in 20 minutes")
        self._store.close()
        self._store = None

    def load_mailbox(self, address: str, messages, threads: int = 32) -> int:
        """Deliver (index, raw) messages into the user's INBOX through the store API."""
        from appliance.store import Delivery
        store = self._open_store()
        user_id = self._user_ids[address]
        base = time.time() - 86400

        def one(item) -> None:
            index, raw = item
            store.deliver(raw, [Delivery(user_id)], internaldate=base + index)
        with ThreadPoolExecutor(threads) as pool:
            return sum(1 for _ in pool.map(one, messages))

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "Kotakpos":
        self._settle()
        self._write_config()
        self.log = open(self.data / "bench-server.log", "wb")
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance", "serve", "--data", str(self.data)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=str(self.data))
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                text = (self.data / "bench-server.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"Kotakpos did not become ready:\n{text}")
            time.sleep(0.1)
        return self

    def admin(self):
        """A client of the running server's admin API (queue operations for the relay run)."""
        from appliance.admin.client import AdminClient
        return AdminClient(self.data / "admin.sock")

    def _ready(self) -> bool:
        """The one `ready` line: a single process's, or the supervisor's once every worker serves."""
        count = self.workers or os.cpu_count() or 1  # 0: one per CPU
        for line in (self.data / "bench-server.log").read_bytes().splitlines():
            if b" ready " in line:
                if count == 1 or line.rstrip().endswith(b" workers=%d" % count):
                    return True
                raise RuntimeError(f"Kotakpos is ready with other than {count} workers: {line!r}")
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.log.close()

    def clean_up(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._own_dir:
            shutil.rmtree(self.data, ignore_errors=True)
