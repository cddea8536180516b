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
import signal
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance import config as config_module
from appliance.auth import Authenticator
from appliance.config import Config
from appliance.imap.push import IdlePusher
from appliance.net import ConnectionServer, SessionRegistry
from appliance.net.listener import tune_runtime
from appliance.mta.srs import Srs, load_secret as load_srs_secret
from appliance.net.tls import TlsContexts, ensure_certificate
from appliance.store import Store

log = logging.getLogger("kotakpos")

LOCK_NAME = "kotakpos.lock"
COUNTS_SAVE_SECONDS = 10.0  # how often counters reach the store (a crash loses at most this much)
ADMIN_SOCKET = "admin.sock"


def _session_classes() -> dict[str, tuple[type, bool]]:
    """listener name -> (session class, implicit TLS). Imported late: protocols import this module."""
    from appliance.smtp.session import SmtpSession
    from appliance.imap.session import ImapSession
    from appliance.pop3.session import Pop3Session
    return {
        "smtp": (SmtpSession, False),
        "submission": (SmtpSession, False),
        "smtps": (SmtpSession, True),
        "pop3": (Pop3Session, False),
        "pop3s": (Pop3Session, True),
        "imap": (ImapSession, False),
        "imaps": (ImapSession, True),
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

    def counts_today(self) -> dict[str, int]:
        day = time.strftime("%Y-%m-%d")
        counts = self.store.daily_counts(day)
        with self.stats_lock:
            for (when, name), n in self.unsaved.items():
                if when == day:
                    counts[name] = counts.get(name, 0) + n
        return counts


class DataFolderInUse(Exception):
    pass


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


def open_store(data_dir: Path) -> Store:
    return Store.in_folder(data_dir)


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
RELOADABLE = frozenset({"limits", "smtp", "pop3", "imap", "auth", "check",
                        "server.log_level", "server.shutdown_grace"})


class Server:
    def __init__(self, data_dir: Path, config: Config, reread_config=None):
        """``reread_config()``: the config as the file now says (with the command line's
        overrides); what SIGHUP applies. None: a reload only reloads the certificate."""
        tune_runtime()
        self.data_dir = data_dir
        self.config = config
        self.reread_config = reread_config
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
        self._lock_handle = lock_data_folder(self.data_dir)
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
        store = open_store(self.data_dir)
        for warning in local_warnings(self.data_dir, cfg):
            log.warning(warning)
        registry = SessionRegistry()
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
                port = getattr(cfg.ports, name) + cfg.server.port_offset
                self.connections.add(name, cfg.server.listen, port, session_class, implicit_tls)
            if cfg.web.enabled or cfg.acme.enabled:
                self._start_web(cfg, tls, store)
        except BaseException:
            for listener in self.connections.listeners:
                for s in listener.sockets:
                    s.close()
            self.ctx.idle_pusher.stop()
            store.close()
            raise
        from appliance.admin.server import AdminSocketServer
        from appliance.admin.api import AdminAPI
        self.admin = AdminAPI(self)
        self.admin_socket = AdminSocketServer(self.admin, self.data_dir / ADMIN_SOCKET)
        self.admin_socket.start()
        self._counts_saver = threading.Thread(target=self._save_counts_loop, name="counts-saver", daemon=True)
        self._counts_saver.start()
        from appliance.mta.queue import QueueRunner
        self.mta = QueueRunner(self.ctx)
        self.mta.start()
        if self.ctx.mda is not None:
            self.ctx.mda.start()
        if self.acme is not None:
            self.acme.start()   # the web listener already answers the CA's HTTP-01 checks
        if cfg.backup.interval > 0:
            from appliance.migrate.backup import Scheduler
            self.backups = Scheduler(store, self.data_dir / cfg.backup.folder, cfg.backup.interval, cfg.backup.keep)
            self.backups.start()
        self.connections.start()
        addresses = " ".join(f"{l.name}={_format(l.addresses[0])}" for l in self.connections.listeners)
        log.info("ready %s admin=%s", addresses, self.data_dir / ADMIN_SOCKET)

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
                                  lambda: self.config.auth.require_app_passwords)
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
            self.acme = CertificateManager(cfg.acme, cfg.server.hostname, self.data_dir, tls, challenges)

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
        while not self._saver_stop.wait(COUNTS_SAVE_SECONDS):
            try:
                self.ctx.save_counts()
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
        self._saver_stop.set()
        try:
            self.ctx.save_counts()
        except Exception as e:
            log.warning("could not save counters: %s", e)
        self.ctx.store.close()
        self.connections = None
        self._release_lock()
        log.info("stopped")

    def _release_lock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None


def _format(address) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def setup_logging(level: str = "info", log_file: Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger("kotakpos")
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    root.propagate = False
