"""The whole server: wires config, store, TLS, auth, listeners and the admin socket.

``Server(data_dir, ...)`` prepares the data folder on first start (config sample,
self-signed certificate, store), binds every listener, serves until stopped, and stops
cleanly: no new connections, transactions in flight finish within a bound, the store is
closed. The listener table below says which session class speaks on which port.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import resource
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance import config as config_module
from appliance.admin.logtail import off_terminal
from appliance.auth import Authenticator
from appliance.config import Config
from appliance.imap.push import IdlePusher
from appliance.net import ConnectionServer, SessionRegistry
from appliance.net.listener import tune_runtime
from appliance.mta.srs import Srs, load_secret as load_srs_secret
from appliance.net.tls import TlsContexts, ensure_certificate
from appliance.store import Store, reset_runtime

log = logging.getLogger("kotakpos")

LOCK_NAME = "kotakpos.lock"
COUNTS_SAVE_SECONDS = 10.0  # how often counters reach the store (a crash loses at most this much)
COUNTS_PUBLISH_SECONDS = 1.0  # how often other processes see this one's counters (store.runtime)
ADMIN_SOCKET = "admin.sock"


def _session_classes() -> dict[str, tuple[type, bool]]:
    """listener name -> (session class, implicit TLS). Imported late: protocols import this module."""
    from appliance.smtp.session import SmtpSession
    from appliance.imap.session import ImapSession
    from appliance.pop3.session import Pop3Session
    from appliance.managesieve.session import ManageSieveSession
    return {
        "smtp": (SmtpSession, False),
        "submission": (SmtpSession, False),
        "smtps": (SmtpSession, True),
        "pop3": (Pop3Session, False),
        "pop3s": (Pop3Session, True),
        "imap": (ImapSession, False),
        "imaps": (ImapSession, True),
        "managesieve": (ManageSieveSession, False),
    }


@dataclass
class ServerContext:
    """What every session may use. One instance per server, shared by all threads."""

    config: Config
    store: Store
    auth: Authenticator
    tls: TlsContexts
    registry: SessionRegistry
    hostname: str
    data_dir: Path
    log: logging.Logger = log
    started: float = field(default_factory=time.time)
    srs: Srs | None = None                       # the SRS identity for forwarding (set at start)
    stats: dict = field(default_factory=dict)   # counters since start: name -> int
    unsaved: dict = field(default_factory=dict)  # (day, name) -> n counted but not yet in the store
    stats_lock: threading.Lock = field(default_factory=threading.Lock)
    mda: object = None  # appliance.mda.Mda: the filters local deliveries pass (None: unfiltered)
    idle_pusher: object = None  # appliance.imap.push.IdlePusher: tells idling IMAP clients of changes
    published: tuple = ()  # the counters as publish_counts last published them (skips a write when the same)

    def count(self, name: str, n: int = 1) -> None:
        key = (time.strftime("%Y-%m-%d"), name)
        with self.stats_lock:
            self.stats[name] = self.stats.get(name, 0) + n
            self.unsaved[key] = self.unsaved.get(key, 0) + n

    def save_counts(self) -> None:
        """Write the counters gathered since the last call to the store's daily counts."""
        with self.stats_lock:
            unsaved, self.unsaved = self.unsaved, {}
        try:
            self.store.add_daily_counts(unsaved)
        except Exception:  # e.g. a full disk: keep them for the next try
            with self.stats_lock:
                for key, n in unsaved.items():
                    self.unsaved[key] = self.unsaved.get(key, 0) + n
            raise
        self.publish_counts()  # at once: others would count what was just saved twice

    def publish_counts(self) -> None:
        """Let the other worker processes' admin see this process's counters."""
        with self.stats_lock:
            stats, unsaved = dict(self.stats), dict(self.unsaved)
        if (stats, unsaved) != self.published:
            self.store.runtime.publish_counters(stats, unsaved)
            self.published = (stats, unsaved)

    def server_stats(self) -> dict[str, int]:
        """The counters since start of every worker process, summed."""
        counts = self.store.runtime.counters("", other_than=os.getpid())
        with self.stats_lock:
            for name, n in self.stats.items():
                counts[name] = counts.get(name, 0) + n
        return counts

    def counts_today(self) -> dict[str, int]:
        """Today's counters: saved in the store, plus what each worker process has not saved yet."""
        day = time.strftime("%Y-%m-%d")
        counts = self.store.daily_counts(day)
        for name, n in self.store.runtime.counters(day, other_than=os.getpid()).items():
            counts[name] = counts.get(name, 0) + n
        with self.stats_lock:
            for (when, name), n in self.unsaved.items():
                if when == day:
                    counts[name] = counts.get(name, 0) + n
        return counts


class DataFolderInUse(Exception):
    pass


@dataclass
class WorkerRole:
    """This process is worker ``index`` of ``count`` under a supervisor (``appliance.supervisor``)."""

    index: int
    count: int
    sockets: dict      # listener name -> the listening sockets the supervisor bound (inherited)
    ready_fd: int      # written once serving; the supervisor says ``ready`` when every worker has
    restarts: int = 0  # how often the supervisor restarted this worker's slot (for the dashboard)
    supervisor_pid: int = 0  # the process an admin signals (SIGHUP, SIGTERM)
    supervisor_started: float = 0.0  # when the server started (unix time): a restarted worker is younger
    last_exit: dict | None = None  # how this slot's previous worker ended (supervisor.exit_report), if one did
    quiet_once_serving: bool = False  # the TUI takes the supervisor's terminal (serve --tui): log nothing on it

    @property
    def first(self) -> bool:
        """The first worker runs what must run once per server (docs/ARCHITECTURE.md)."""
        return self.index == 0


WORKERS_FOLDER = "workers"  # the workers' doorbell sockets (net/doorbell.py), in the data folder
LOG_SOCKET = "log.sock"     # in WORKERS_FOLDER: the first worker hears the other processes' log lines (admin/logtail.py)


# Everything Kotakpos writes is mail or what guards it (store, search index, snapshots,
# backups, exports, the TLS key, the config with the smarthost password): files 0600 in
# folders 0700, whatever umask the process was started with (root's is 022).
PRIVATE_UMASK = 0o077


def keep_files_private() -> None:
    """From now on this process creates files 0600 and folders 0700 (SQLite gives -wal/-shm its file's mode)."""
    os.umask(PRIVATE_UMASK)


def local_warnings(data_dir: Path, config: Config) -> list[str]:
    """What an admin should fix on this machine: the hostname, mail data others may read.

    Logged at every start and printed by `kotakpos check`.
    """
    hostname = config_module.hostname_warning(config.server.hostname)
    return ([hostname] if hostname else []) + open_to_others(data_dir, config)


def open_to_others(data_dir: Path, config: Config) -> list[str]:
    """Warnings, each with the chmod that fixes it, for mail data that others than its owner may read."""
    snapshots = data_dir / config.backup.folder
    candidates = [data_dir, *sorted(data_dir.glob("kotakpos*.sqlite*")), data_dir / config.tls.key_file,
                  data_dir / "kotakpos.toml", snapshots, *sorted(snapshots.glob("*")),
                  data_dir / "backups", *sorted((data_dir / "backups").glob("*"))]
    warnings = []
    for path in candidates:
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue
        if not mode & PRIVATE_UMASK or stat.S_ISLNK(mode):
            continue
        wanted = "700" if stat.S_ISDIR(mode) else "600"
        what = "the data folder" if path == data_dir else "folder" if stat.S_ISDIR(mode) else "file"
        warnings.append(f"{what} {path} is open to other users (mode {stat.S_IMODE(mode):04o}): "
                        f"fix it with chmod {wanted} {path}")
    return warnings


def resolve_paths(data: str | os.PathLike | None, config_file: str | os.PathLike | None) -> tuple[Path, Path]:
    """The data folder and config file from options, environment and defaults."""
    data_dir = Path(data or os.environ.get("KOTAKPOS_DATA") or "kotakpos-data").absolute()
    cfg = config_file or os.environ.get("KOTAKPOS_CONFIG")
    return data_dir, (Path(cfg).absolute() if cfg else data_dir / "kotakpos.toml")


def load_config(data_dir: Path, config_path: Path, write_sample: bool = False) -> Config:
    if write_sample and not config_path.exists() and config_path.parent == data_dir:
        data_dir.mkdir(parents=True, exist_ok=True)
        config_path.write_text(config_module.sample_text(), encoding="utf-8")
    return config_module.load(config_path)


def open_store(data_dir: Path, indexer: bool = True) -> Store:
    return Store.in_folder(data_dir, indexer=indexer)


def lock_data_folder(data_dir: Path):
    """An exclusive lock on the data folder, held while a server runs (restore checks it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataFolderInUse(f"{data_dir} is in use by a running Kotakpos server") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def folder_in_use(data_dir: Path) -> bool:
    path = data_dir / LOCK_NAME
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


# What a running server takes over when its config is reloaded (SIGHUP): a whole section
# or one "section.key". Sessions read these from ctx.config when they start, so new
# sessions get the new values and open ones keep theirs. Everything else is bound at start
# (sockets, names in the certificate, the queue runner, the filters, the schedulers) and
# takes a restart.
RELOADABLE = frozenset({"limits", "smtp", "pop3", "imap", "managesieve", "auth", "check",
                        "server.log_level", "server.shutdown_grace"})


class Server:
    def __init__(self, data_dir: Path, config: Config, reread_config=None, worker: WorkerRole | None = None):
        """``reread_config()``: the config as the file now says (with the command line's
        overrides); what SIGHUP applies. None: a reload only reloads the certificate.
        ``worker``: serve as one worker of several, on sockets the supervisor bound; None:
        the whole server in this process."""
        tune_runtime()
        self.data_dir = data_dir
        self.config = config
        self.reread_config = reread_config
        self.worker = worker
        # What runs once per server: the queue, schedulers, web, admin socket, indexer, trainer.
        self.runs_singletons = worker is None or worker.first
        self.doorbell = None  # net.doorbell.Doorbell of a worker
        self._lock_handle = None
        self._stopped = threading.Event()
        self._saver_stop = threading.Event()
        self.ctx: ServerContext | None = None
        self.connections: ConnectionServer | None = None
        self.admin = None
        self.mta = None
        self.backups = None   # appliance.migrate.backup.Scheduler when [backup] interval > 0
        self.web = None       # appliance.web.server.WebListener when [web] or [acme] enabled
        self.acme = None      # appliance.acme.manager.CertificateManager when [acme] enabled

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the data folder, bind every listener and start serving. Raises BindError."""
        cfg = self.config
        keep_files_private()
        if self.worker is None:  # a worker's supervisor holds the lock (and reset the runtime)
            self._lock_handle = lock_data_folder(self.data_dir)
            reset_runtime(self.data_dir)  # the folder is ours: nothing else serves from it
        try:
            self._start(cfg)
        except BaseException:
            self._release_lock()
            raise

    def _start(self, cfg: Config) -> None:
        cert = self.data_dir / cfg.tls.cert_file
        key = self.data_dir / cfg.tls.key_file
        if ensure_certificate(cert, key, cfg.server.hostname):
            log.info("created a self-signed certificate for %s in %s", cfg.server.hostname, cert)
        tls = TlsContexts(cert, key)
        store = open_store(self.data_dir, indexer=self.runs_singletons)
        if self.worker is None:  # the supervisor warned once for all workers
            for warning in local_warnings(self.data_dir, cfg):
                log.warning(warning)
        registry = SessionRegistry(store.runtime)
        store.release_expunged()  # what was kept for sessions that ended with an earlier run
        auth = Authenticator(store, cfg.auth)
        self.ctx = ServerContext(config=cfg, store=store, auth=auth, tls=tls, registry=registry,
                                 hostname=cfg.server.hostname, data_dir=self.data_dir,
                                 srs=Srs(load_srs_secret(store), cfg.mta.srs_domain or cfg.server.hostname))
        self.ctx.idle_pusher = IdlePusher(store)
        self.connections = ConnectionServer(
            self.ctx, registry, tls.current, cfg.server.max_connections, cfg.server.max_connections_per_ip,
            exempt_from_ip_limit=lambda ip: auth.trusted.contains(ip))  # trusted networks may be reloaded
        try:
            from appliance.mda import Mda  # first: a bad [mda] setting stops the start cleanly
            self.ctx.mda = Mda(self.ctx) if cfg.mda.filters else None
            for name, (session_class, implicit_tls) in _session_classes().items():
                if self.worker is not None:
                    self.connections.adopt(name, self.worker.sockets[name], session_class, implicit_tls)
                    continue
                port = getattr(cfg.ports, name) + cfg.server.port_offset
                self.connections.add(name, cfg.server.listen, port, session_class, implicit_tls)
            if self.runs_singletons and (cfg.web.enabled or cfg.acme.enabled):
                self._start_web(cfg, tls, store)
        except BaseException:
            for listener in self.connections.listeners:
                for s in listener.sockets:
                    s.close()
            self.ctx.idle_pusher.stop()
            store.close()
            raise
        if self.worker is not None:
            from appliance.net.doorbell import Doorbell
            self.doorbell = Doorbell(self.data_dir / WORKERS_FOLDER, self.worker.index, self.worker.count,
                                     on_ring=store.catch_up, report=self.worker_report, on_certificate=self.reload_tls)
            store.after_each_commit(self.doorbell.ring_others)
        # Each worker saves its own counters: the store adds them up (add_daily_counts).
        self._counts_saver = threading.Thread(target=self._save_counts_loop, name="counts-saver", daemon=True)
        self._counts_saver.start()
        if self.ctx.mda is not None:
            self.ctx.mda.start(train=self.runs_singletons)
        if self.runs_singletons:
            self._start_singletons(cfg, store)
        self.connections.start()
        if self.worker is not None:
            log.info("worker %d serving, pid %d", self.worker.index, os.getpid())
            if self.worker.quiet_once_serving:
                off_terminal()  # until it serves, why a start fails is said on the terminal
            os.write(self.worker.ready_fd, b"r")
            os.close(self.worker.ready_fd)
            return
        addresses = " ".join(f"{l.name}={_format(l.addresses[0])}" for l in self.connections.listeners)
        log.info("ready %s admin=%s", addresses, self.data_dir / ADMIN_SOCKET)

    def _start_singletons(self, cfg: Config, store: Store) -> None:
        """What runs in one process of the server: the admin socket, the relay queue (its
        limits hold for the whole server), certificate renewal and backups."""
        from appliance.admin.server import AdminSocketServer
        from appliance.admin.api import AdminAPI
        self.admin = AdminAPI(self)
        if self.worker is not None:  # the supervisor and the other workers send their lines here
            self.admin.hear_logs_at(self.data_dir / WORKERS_FOLDER / LOG_SOCKET)
        self.admin_socket = AdminSocketServer(self.admin, self.data_dir / ADMIN_SOCKET)
        self.admin_socket.start()
        from appliance.mta.queue import QueueRunner
        self.mta = QueueRunner(self.ctx)
        self.mta.start()
        if self.acme is not None:
            self.acme.start()   # the web listener already answers the CA's HTTP-01 checks
        if cfg.backup.interval > 0:
            from appliance.migrate.backup import Scheduler
            self.backups = Scheduler(store, self.data_dir / cfg.backup.folder, cfg.backup.interval, cfg.backup.keep)
            self.backups.start()

    @property
    def pid(self) -> int:
        """The server's process for signals: the supervisor of a worker, else this one."""
        return self.worker.supervisor_pid if self.worker else os.getpid()

    @property
    def started(self) -> float:
        """When the server started (unix time): its supervisor's start, or this process's."""
        return self.worker.supervisor_started if self.worker else self.ctx.started

    def worker_report(self) -> dict:
        """This process for the admin's list of workers (``AdminAPI.workers`` says what is in it)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        sessions = [info.to_dict() for info in self.ctx.registry.list()] if self.ctx else []
        by_protocol: dict[str, int] = {}
        for s in sessions:
            by_protocol[s["protocol"]] = by_protocol.get(s["protocol"], 0) + 1
        return {"index": self.worker.index if self.worker else 0, "pid": os.getpid(),
                "started": self.ctx.started if self.ctx else 0,
                "sessions": len(sessions), "sessions_by_protocol": by_protocol, "session_list": sessions,
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), **_memory(),
                "restarts": self.worker.restarts if self.worker else 0,
                "last_exit": self.worker.last_exit if self.worker else None}

    def catch_up(self) -> None:
        """Publish what other processes committed to the store, in every worker; returns once done."""
        self.ctx.store.catch_up()
        if self.worker is not None:
            from appliance.net.doorbell import catch_up_all
            catch_up_all(self.data_dir / WORKERS_FOLDER, self.worker.count, self.worker.index)

    def workers(self) -> list[dict]:
        """Every worker's report (one entry for a single-process server)."""
        own = self.worker_report()
        if self.worker is None:
            return [own]
        from appliance.net.doorbell import gather
        return gather(self.data_dir / WORKERS_FOLDER, self.worker.count, own, self.worker.index)

    def _start_web(self, cfg: Config, tls: TlsContexts, store: Store) -> None:
        from appliance.web import app
        from appliance.web.documents import Settings
        from appliance.web.server import WebListener
        from appliance.web.setup import SetupSite
        offset = cfg.server.port_offset
        client_ports = ("imaps", "imap", "pop3s", "pop3", "smtps", "submission")
        settings = Settings(cfg.server.hostname, {name: self.port(name) for name in client_ports},
                            cfg.web.mta_sts_mode, cfg.web.mta_sts_max_age)
        challenges = None
        if cfg.acme.enabled:
            from appliance.acme.issuer import Challenges
            challenges = Challenges()
        site = SetupSite(settings, store.is_local_domain) if cfg.web.enabled else None
        # With only [acme] on, HTTP serves its challenges and nothing listens on HTTPS.
        https_port = cfg.web.https_port + offset if cfg.web.enabled else None
        https_app = None
        if site is not None:
            from appliance.web.account import AccountSite, account_routes
            account = AccountSite(store, self.ctx.auth, cfg.server.hostname,
                                  lambda: self.config.auth.require_app_passwords,
                                  lambda: self.config.mda.vacation_days,
                                  managesieve=lambda: self.config.managesieve)
            https_app = app.https_app(site, account_routes(account))
        self.web = WebListener(cfg.server.listen, cfg.web.http_port + offset, https_port, tls.current,
                               app.http_app(site, challenges, (lambda: self.web.port("https")) if site else None),
                               https_app)
        self.web.start()
        if site is not None:
            port = self.web.port("https")
            log.info("the account page is at https://%s%s/account", cfg.server.hostname, "" if port == 443 else f":{port}")
        if challenges is not None:
            from appliance.acme.manager import CertificateManager
            self.acme = CertificateManager(cfg.acme, cfg.server.hostname, self.data_dir, tls, challenges,
                                           installed=self._certificate_installed)

    def _certificate_installed(self) -> None:
        """ACME put a new certificate in place (this process loaded it): the other workers load it too."""
        if self.doorbell is not None:
            self.doorbell.certificate_changed()

    def port(self, name: str) -> int:
        return next(l.port for l in self.connections.listeners if l.name == name)

    # -- run and stop --------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the server, SIGHUP reloads the config and the TLS certificate.

        Called before ``start()``: a supervisor may signal as soon as it sees ``ready``.
        """
        signal.signal(signal.SIGTERM, lambda *_: self._stopped.set())
        signal.signal(signal.SIGINT, lambda *_: self._stopped.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload() if self.ctx else None)

    def reload(self) -> None:
        """Reload the TLS certificate, and the config where it is safe (RELOADABLE).

        A config file that no longer loads changes nothing; a changed setting that needs a
        restart is named in the log and not applied.
        """
        self.reload_tls()
        if self.reread_config is None:
            return
        try:
            new = self.reread_config()
        except config_module.ConfigError as e:
            log.error("config reload failed, keeping the running settings: %s", e)
            return
        applied, needs_restart, changes = [], [], {}
        for section in dataclasses.fields(Config):
            old_values, new_values = getattr(self.config, section.name), getattr(new, section.name)
            for f in dataclasses.fields(old_values):
                value = getattr(new_values, f.name)
                if getattr(old_values, f.name) == value:
                    continue
                name = f"{section.name}.{f.name}"
                if section.name in RELOADABLE or name in RELOADABLE:
                    changes.setdefault(section.name, {})[f.name] = value
                    applied.append(name)
                else:
                    needs_restart.append(name)
        self.config = self.ctx.config = config_module.with_overrides(self.config, **changes)
        self.ctx.auth.reconfigure(self.config.auth)
        logging.getLogger("kotakpos").setLevel(self.config.server.log_level.upper())
        log.info("reloaded the config: %s", f"applied {', '.join(applied)}" if applied else "nothing to apply")
        if needs_restart:
            log.warning("changed settings that take effect only after a restart, not applied: %s",
                        ", ".join(needs_restart))

    def serve_forever(self) -> None:
        """Block until a stop is requested (a signal or ``request_stop()``), then stop."""
        while not self._stopped.wait(0.5):
            pass
        self.stop()

    def reload_tls(self) -> None:
        try:
            self.ctx.tls.reload()
            log.info("reloaded TLS certificate %s", self.ctx.tls.cert_path)
        except Exception as e:
            log.error("TLS reload failed, keeping the old certificate: %s", e)

    def request_stop(self) -> None:
        self._stopped.set()

    def _save_counts_loop(self) -> None:
        next_save = time.monotonic() + COUNTS_SAVE_SECONDS
        while not self._saver_stop.wait(COUNTS_PUBLISH_SECONDS):
            try:
                if time.monotonic() >= next_save:
                    next_save = time.monotonic() + COUNTS_SAVE_SECONDS
                    self.ctx.save_counts()
                else:
                    self.ctx.publish_counts()
            except Exception as e:
                log.warning("could not save counters, keeping them for later: %s", e)

    def stop(self) -> None:
        if self.connections is None:
            return
        log.info("stopping: no new connections, %d session(s) finishing", self.ctx.registry.count())
        if self.mta is not None:
            # First: no new outbound attempts while the listeners wind down.
            self.mta.stop(self.config.server.shutdown_grace)
            self.mta = None
        if self.acme is not None:
            self.acme.stop()
            self.acme = None
        if self.web is not None:
            self.web.stop()
            self.web = None
        self.connections.stop(self.config.server.shutdown_grace)
        self.ctx.idle_pusher.stop()
        if self.backups is not None:
            self.backups.stop()
            self.backups = None
        if self.ctx.mda is not None:
            self.ctx.mda.close()
        if self.admin is not None:
            self.admin_socket.stop()
            self.admin.close()
        if self.doorbell is not None:
            self.doorbell.close()
        self._saver_stop.set()
        try:
            self.ctx.save_counts()
        except Exception as e:
            log.warning("could not save counters: %s", e)
        self.ctx.store.runtime.unregister()
        self.ctx.store.close()
        self.connections = None
        self._release_lock()
        log.info("stopped")

    def _release_lock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None


def _memory() -> dict:
    """This process's memory in bytes: ``rss`` (resident, shared pages counted whole) and
    ``pss`` (shared pages divided among the processes sharing them: the workers' PSS adds up
    to what the server really holds). From Linux's /proc; 0 where it is missing."""
    found = {}
    try:
        with open("/proc/self/smaps_rollup") as f:  # Linux 4.14
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss"):
                    found[key.lower()] = int(value.split()[0]) * 1024  # "Pss:  1234 kB"
    except (OSError, ValueError, IndexError):
        pass
    return {"rss": found.get("rss", 0), "pss": found.get("pss", 0)}


def _format(address) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class LogFormatter(logging.Formatter):
    """``logging.Formatter`` that makes its time stamp once a second, not once a line: a
    busy server logs a line per message, and ``strftime`` was about a third of what a line cost."""

    _second: tuple[int, str] = (-1, "")  # (whole second, its stamp without milliseconds)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return super().formatTime(record, datefmt)
        second, text = self._second
        if int(record.created) != second:
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (int(record.created), text)
        return self.default_msec_format % (text, record.msecs)


def setup_logging(level: str = "info", log_file: Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    fmt = LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger("kotakpos")
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    root.propagate = False
