"""``kotakpos serve`` with ``[server] workers`` above 1: one supervisor, N worker processes.

The supervisor takes the data-folder lock, prepares the folder (certificate, store
migrations), binds every listening socket once — so privileged ports work for a root
start and for the systemd unit's CAP_NET_BIND_SERVICE alike — and forks the workers. Each
worker is today's threaded ``Server`` on the inherited sockets (every worker accepts on
every port); the first one also runs what must run once per server (``Server._start_singletons``).

Workers are made with ``fork()`` from a supervisor that has started no thread: they
inherit the sockets, the loaded modules (shared pages: less memory than N fresh
interpreters) and the config, and it works the same in the PyInstaller binary, where
re-executing ``sys.executable`` would need a second entry point. The supervisor itself
only waits for signals and children:

- every worker writes one byte to its pipe once serving; when all have, the supervisor
  logs the one ``ready`` line (the format a single-process server logs, plus ``workers=N``);
- SIGTERM/SIGINT: SIGTERM to every worker (each finishes its transactions within
  ``shutdown_grace``), then the lock is released; SIGHUP is passed to every worker;
- a worker that dies is started again at once. One that keeps dying young — before it
  served, or within ``CRASH_UPTIME`` of it, ``CRASH_LIMIT`` times in a row — is in a crash
  loop (a bug met at every start, a full disk): it is started again only after a pause
  that doubles each time, up to ``CRASH_PAUSE_MAX``, and the log says so. A worker that
  served longer ends the series: a crash now and then is always restarted at once. If a worker dies before the server was ever
  ready, the start failed: every worker is stopped and ``serve`` exits non-zero. Each slot
  keeps its restarts and how its last worker ended, and hands them to the next worker, whose
  report the admin shows;
- every process's log lines name it (``kotakpos[pid]:``) and also go to the first worker's
  log view (``admin.logtail``);
- ``serve --tui``: once ready, the TUI is forked as a process of its own that attaches over the
  admin socket; when it ends, the server stops with its exit status.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from appliance.admin.logtail import LogForwarder, back_on_terminal, off_terminal
from appliance.config import Config
from appliance.net.listener import BindError, bind
from appliance.net.tls import ensure_certificate
from appliance.store import reset_runtime
from appliance.server import (ADMIN_SOCKET, LOG_SOCKET, WORKERS_FOLDER, LogFormatter, Server, WorkerRole, _format,
                              _session_classes, keep_files_private, local_warnings, lock_data_folder, open_store)

log = logging.getLogger("kotakpos")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"  # every process names itself
CRASH_UPTIME = 1.0    # seconds of serving after which a worker's death is no sign of a crash loop
CRASH_LIMIT = 5       # young deaths in a row before restarts slow down
CRASH_PAUSE_MAX = 60.0
STOP_MARGIN = 10.0    # beyond shutdown_grace, before a worker that does not stop is killed
TUI_STOP = 5.0        # seconds the TUI has to give the terminal back when the server stops


def worker_count(config: Config) -> int:
    """``[server] workers``: 0 means one per CPU this process may run on."""
    return max(1, config.server.workers or usable_cpus())


def usable_cpus() -> int:
    """The CPUs this process may run on (a ``taskset`` or a container's cpuset gives fewer than the box has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def pin_to_one_cpu(index: int) -> None:
    """Keep this process on the ``index``-th CPU it may run on (counting round), with every
    thread it starts from here on: Linux gives a new thread its creator's CPU mask.

    One interpreter runs one thread at a time, so spreading a worker's threads over CPUs buys
    nothing, while every hand-over of the interpreter lock, the store writer's answer or a
    client's bytes to a thread asleep on another CPU costs a cross-CPU wake-up. Measured
    in bench/README.md ("One CPU per worker").
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[index % len(cpus)]})
    except (AttributeError, OSError):  # not Linux, or a CPU mask the system will not change: run unpinned
        pass


PR_SET_PDEATHSIG = 1  # Linux prctl(2)


def _stop_with(supervisor: int) -> None:
    """Have the kernel send this worker SIGTERM when its supervisor dies (even by SIGKILL):
    a worker left alone would hold the ports, and the next start could not bind them."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return  # not Linux: the supervisor's own SIGTERM still stops the workers
    if os.getppid() != supervisor:  # it died before the prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def exit_status(status: int) -> int:
    """A ``waitpid`` status as a shell would give it: 128 + the signal of a killed process."""
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def exit_report(status: int) -> dict:
    """How a worker ended, from its ``waitpid`` status, for the log and the admin's list of
    workers: the reason in words ("killed by signal 9 (SIGKILL)"), the signal's name or the
    exit status, and when (wall clock)."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return {"reason": f"killed by signal {signum} ({name})", "signal": name, "status": None, "at": time.time()}
    code = os.WEXITSTATUS(status)
    return {"reason": f"exited with status {code}", "signal": None, "status": code, "at": time.time()}


class StartFailed(Exception):
    """A worker died before the server was ready (its log lines say why)."""


@dataclass
class _Slot:
    index: int
    pid: int = 0
    ready_fd: int = -1           # the read end of the worker's ready pipe, until it wrote
    ready: bool = False
    restarts: int = 0
    ready_at: float = 0.0        # monotonic time it said it serves
    young_deaths: int = 0        # deaths in a row before or soon after serving
    pause: float = 0.0           # the current crash-loop pause
    start_at: float = 0.0        # when a dead worker is to be started again (0: not waiting)
    last_exit: dict | None = None  # how its predecessor ended (``exit_report``), told to each new worker


class Supervisor:
    def __init__(self, data_dir: Path, config: Config, reread_config=None, tui: Callable[[], int] | None = None):
        """``tui``: run in a process of its own once the server is ready (``serve --tui``),
        it administers the server over the admin socket and returns an exit status; the
        server stops when it returns."""
        self.data_dir = data_dir
        self.config = config
        self.reread_config = reread_config
        self.count = worker_count(config)
        self.slots = [_Slot(i) for i in range(self.count)]
        self.sockets: dict[str, list[socket.socket]] = {}
        self._lock_handle = None
        self._stopping = False
        self._hangup = False
        self._wake_read = self._wake_write = -1
        self._ready_logged = False
        self._reloaded = False  # a SIGHUP came: a worker started from now on reloads as the others did
        self.shutdown_grace = config.server.shutdown_grace
        self.started = time.time()
        self.tui = tui
        self.tui_pid = 0
        self.tui_status = 0           # the TUI's exit status, once it ended
        self._forwarder: LogForwarder | None = None
        self._on_terminal: list[logging.Handler] = []  # the log handlers taken off the terminal for the TUI

    # -- start ---------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT, or until the TUI ends; returns the TUI's exit status
        (0 without one). Raises DataFolderInUse, BindError or StartFailed."""
        keep_files_private()
        self._lock_handle = lock_data_folder(self.data_dir)
        reset_runtime(self.data_dir)  # the folder is ours: what dead processes shared is stale
        logger = logging.getLogger("kotakpos")
        for handler in logger.handlers:  # the workers keep it: each line says which process wrote it
            handler.setFormatter(LogFormatter(LOG_FORMAT))
        try:
            self._prepare()
            # The first worker keeps the log view's lines: tell it ours (workers inherit this).
            self._forwarder = LogForwarder(self.data_dir / WORKERS_FOLDER / LOG_SOCKET)
            logger.addHandler(self._forwarder)
            self._install_signal_handlers()
            for slot in self.slots:
                self._fork(slot)
            self._loop()
        finally:
            back_on_terminal(self._on_terminal)  # the TUI has ended: the last lines are for the terminal
            self._on_terminal = []
            # Our copies of the listening sockets go first: once each worker has closed its own
            # (at once on SIGTERM), a client arriving is refused instead of waiting in the
            # backlog while busy sessions have their shutdown_grace.
            for socks in self.sockets.values():
                for s in socks:
                    s.close()
            self._stop_all()
            self._lock_handle.close()  # releases the lock: every worker has exited
            if self._wake_read >= 0:  # workers were started (a failed bind says why itself)
                log.info("stopped")
            if self._forwarder is not None:
                logger.removeHandler(self._forwarder)
                self._forwarder.close()
        return self.tui_status

    def _prepare(self) -> None:
        """What one process does before the workers exist: the folder, the store's schema, the sockets."""
        cfg = self.config
        (self.data_dir / WORKERS_FOLDER).mkdir(mode=0o700, exist_ok=True)
        for stale in (self.data_dir / WORKERS_FOLDER).glob("*.sock"):
            stale.unlink()
        cert, key = self.data_dir / cfg.tls.cert_file, self.data_dir / cfg.tls.key_file
        if ensure_certificate(cert, key, cfg.server.hostname):
            log.info("created a self-signed certificate for %s in %s", cfg.server.hostname, cert)
        open_store(self.data_dir, indexer=False).close()  # migrations run once, here
        for warning in local_warnings(self.data_dir, cfg):
            log.warning(warning)
        try:
            for name in _session_classes():  # imported here: the workers share these pages
                port = getattr(cfg.ports, name) + cfg.server.port_offset
                self.sockets[name] = [s for host in cfg.server.listen for s in bind(host, port, name)]
        except BindError:
            for socks in self.sockets.values():
                for s in socks:
                    s.close()
            self.sockets = {}
            raise

    def _install_signal_handlers(self) -> None:
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        signal.set_wakeup_fd(self._wake_write)  # a signal wakes the select() below

        def stop(*_):
            self._stopping = True

        def hangup(*_):
            self._hangup = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hangup)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select()

    def _fork(self, slot: _Slot) -> None:
        ready_read, ready_write = os.pipe()
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(ready_read)
            self._become_worker(slot, ready_write, supervisor)  # never returns
        os.close(ready_write)
        slot.pid, slot.ready_fd, slot.ready, slot.start_at = pid, ready_read, False, 0.0

    def _leave_the_supervisor(self, supervisor: int) -> None:
        """In a forked child: the default signal handlers, an end when the supervisor ends,
        and none of the supervisor's wake-up pipe."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        _stop_with(supervisor)
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _become_worker(self, slot: _Slot, ready_write: int, supervisor: int) -> None:
        code = 1
        try:
            self._leave_the_supervisor(supervisor)
            if slot.index == 0:  # it keeps the log view's lines itself (server.Server._start_singletons)
                logging.getLogger("kotakpos").removeHandler(self._forwarder)
            for other in self.slots:
                if other.ready_fd >= 0:
                    os.close(other.ready_fd)
            # Closing this copy keeps the supervisor's lock: a flock belongs to the open file.
            self._lock_handle.close()
            if self.config.server.pin_workers:
                pin_to_one_cpu(slot.index)
            role = WorkerRole(slot.index, self.count, self.sockets, ready_write, slot.restarts, supervisor,
                              self.started, slot.last_exit, quiet_once_serving=self.tui is not None)
            server = Server(self.data_dir, self.config, self.reread_config, worker=role)
            server.install_signal_handlers()
            server.start()
            if self._reloaded:
                server.reload()
            server.serve_forever()
            code = 0
        except BaseException:
            log.exception("worker %d failed", slot.index)
        finally:
            logging.shutdown()
            os._exit(code)  # never back into the supervisor's stack (click, this loop)

    # -- supervise -----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping:
            waiting = [s.start_at for s in self.slots if s.start_at]
            timeout = max(0.0, min(waiting) - time.monotonic()) if waiting else None
            fds = [self._wake_read] + [s.ready_fd for s in self.slots if s.ready_fd >= 0]
            try:
                readable = select.select(fds, [], [], timeout)[0]
            except InterruptedError:
                readable = []
            if self._wake_read in readable:
                os.read(self._wake_read, 512)
            for slot in self.slots:
                if slot.ready_fd in readable:
                    self._heard_from(slot)
            self._reap()
            if self._hangup:
                self._hangup = False
                self._signal_all(signal.SIGHUP)
                log.info("passed SIGHUP on to %d worker(s)", self.count)
                self._reread_config()
            now = time.monotonic()
            for slot in self.slots:
                if slot.start_at and now >= slot.start_at and not self._stopping:
                    slot.restarts += 1
                    self._fork(slot)
                    log.info("worker %d started again, pid %d", slot.index, slot.pid)

    def _reread_config(self) -> None:
        """Take the new shutdown_grace (the wait for stopping workers) and log level, as the workers do."""
        self._reloaded = True
        if self.reread_config is None:
            return
        try:
            new = self.reread_config()
        except Exception:  # noqa: BLE001 - each worker logs why the file does not load
            return
        self.shutdown_grace = new.server.shutdown_grace
        logging.getLogger("kotakpos").setLevel(new.server.log_level.upper())

    def _heard_from(self, slot: _Slot) -> None:
        got = os.read(slot.ready_fd, 1)
        os.close(slot.ready_fd)
        slot.ready_fd = -1
        slot.ready = bool(got)  # b"": it closed the pipe without being ready (it is dying)
        slot.ready_at = time.monotonic()
        if not self._ready_logged and all(s.ready for s in self.slots):
            self._ready_logged = True
            addresses = " ".join(f"{name}={_format(socks[0].getsockname())}" for name, socks in self.sockets.items())
            log.info("ready %s admin=%s workers=%d", addresses, self.data_dir / ADMIN_SOCKET, self.count)
            if self.tui is not None:
                self._fork_tui()

    def _fork_tui(self) -> None:
        """The TUI in a process of its own: this one stays without threads, so that it can
        fork workers again; it reaches the server over the admin socket, as ``kotakpos tui``."""
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self._leave_the_supervisor(supervisor)
                for socks in self.sockets.values():
                    for s in socks:
                        s.close()
                self._lock_handle.close()
                logging.getLogger("kotakpos").handlers.clear()  # it serves nothing: nothing of its own to log
                code = self.tui()
            except BaseException:
                traceback.print_exc()  # before the TUI took the terminal (it says why it fails itself)
            finally:
                os._exit(code)
        self.tui_pid = pid
        # From now on the terminal is the TUI's: the log view and the log file get the lines,
        # workers started from now on inherit this, and those serving already leave it too.
        self._on_terminal = off_terminal()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.tui_pid:  # the admin quit the TUI (or it crashed): the server stops
                self.tui_pid = 0
                self.tui_status = exit_status(status)
                self._stopping = True
                continue
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = 0
            if slot.ready_fd >= 0:
                os.close(slot.ready_fd)
                slot.ready_fd = -1
            if self._stopping:
                continue
            slot.last_exit = exit_report(status)
            how = slot.last_exit["reason"]
            if not self._ready_logged:
                self._stopping = True
                raise StartFailed(f"worker {slot.index} {how} while starting; see the log above")
            self._schedule_restart(slot, pid, how)

    def _schedule_restart(self, slot: _Slot, pid: int, how: str) -> None:
        now = time.monotonic()
        young = not slot.ready or now - slot.ready_at < CRASH_UPTIME
        slot.young_deaths = slot.young_deaths + 1 if young else 0
        if slot.young_deaths < CRASH_LIMIT:
            slot.pause = 0.0
            log.warning("worker %d (pid %d) %s; starting it again", slot.index, pid, how)
        else:
            slot.pause = min(CRASH_PAUSE_MAX, max(1.0, slot.pause * 2))
            log.error("worker %d (pid %d) %s, the %d. time in a row before or right after it served: "
                      "starting it again in %.0fs", slot.index, pid, how, slot.young_deaths, slot.pause)
        slot.ready = False
        slot.start_at = now + slot.pause if slot.pause else now

    # -- stop ----------------------------------------------------------------------------

    def _signal_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.pid:
                try:
                    os.kill(slot.pid, signum)
                except ProcessLookupError:
                    pass

    def _stop_tui(self) -> None:
        """SIGTERM the TUI and wait for it (SIGKILL after TUI_STOP: the workers must not wait on it)."""
        os.kill(self.tui_pid, signal.SIGTERM)
        deadline = time.monotonic() + TUI_STOP
        while True:
            pid, status = os.waitpid(self.tui_pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(self.tui_pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)
        self.tui_pid = 0
        self.tui_status = exit_status(status)

    def _stop_all(self) -> None:
        """SIGTERM every worker; wait for them (transactions finish within shutdown_grace)."""
        self._stopping = True
        if self.tui_pid:  # SIGTERM to the server: the TUI gives the terminal back before the last lines
            self._stop_tui()
        if not any(s.pid for s in self.slots):
            return
        log.info("stopping %d worker(s)", sum(1 for s in self.slots if s.pid))
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_grace + STOP_MARGIN
        while any(s.pid for s in self.slots):
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                for slot in self.slots:
                    if slot.pid == pid:
                        slot.pid = 0
                continue
            if time.monotonic() > deadline:
                log.error("worker(s) did not stop within %.0fs: killing them", self.shutdown_grace + STOP_MARGIN)
                self._signal_all(signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)
