"""Running ``kotakpos serve`` as a real process, the way a user does, on free offset ports."""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

NO_DNS_CONFIG = '[dns]\nresolver = "none"\n'
DEFAULT_PORTS = {"smtp": 25, "submission": 587, "smtps": 465, "pop3": 110, "pop3s": 995, "imap": 143, "imaps": 993,
                 "managesieve": 4190}
WEB_PORTS = {"http": 80, "https": 443}  # the [web] listener, on by default


def free_offset() -> int:
    """A port offset at which all the standard ports and the web's two are free on 127.0.0.1."""
    for _ in range(200):
        offset = random.randrange(20000, 60000, 1000)
        socks = []
        try:
            for port in [*DEFAULT_PORTS.values(), *WEB_PORTS.values()]:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port + offset))
            return offset
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port offset")


def environment(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with (glibc splits GLIBC_TUNABLES in place at its ':')."""
    raw = open(f"/proc/{pid}/environ", "rb").read()
    return dict(entry.decode().partition("=")[::2] for entry in raw.split(b"\0") if entry)


def children(pid: int) -> list[int]:
    return [int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()]


def kotakpos_command() -> list[str]:
    return [sys.executable, "-m", "appliance"]


class ServeProcess:
    """``kotakpos serve`` in a child process; collects its log and waits for ``ready``."""

    def __init__(self, data_dir: Path, command: list[str] | None = None, extra: list[str] = (), env=None,
                 offset: int | None = None, dns_off: bool = True):
        """``dns_off``: unless the test brings its own config, write one that never asks DNS,
        so mail arriving in a test never makes the filters or the queue look beyond loopback."""
        self.data_dir = Path(data_dir)
        config = self.data_dir / "kotakpos.toml"
        if dns_off and not config.exists() and "KOTAKPOS_CONFIG" not in (env or {}):
            self.data_dir.mkdir(parents=True, exist_ok=True)
            config.write_text(NO_DNS_CONFIG)
        # A restart may pass its predecessor's offset: the server rebinds with SO_REUSEADDR,
        # while free_offset() would count ports in TIME_WAIT from the old process as taken.
        self.offset = free_offset() if offset is None else offset
        self.command = (command or kotakpos_command()) + ["serve", "--data", str(self.data_dir),
                                                          "--listen", "127.0.0.1", "--port-offset", str(self.offset),
                                                          *extra]
        self.log_lines: list[str] = []
        self._ready = threading.Event()
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, **(env or {})})
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.log_lines.append(line)
            if re.search(r"\bready\b", line):
                self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.log_lines)

    def wait_ready(self, timeout: float = 30.0) -> float:
        start = time.monotonic()
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise RuntimeError(f"kotakpos exited with {self.proc.returncode}:\n{self.log}")
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"no ready line after {timeout}s:\n{self.log}")
        return time.monotonic() - start

    def port(self, name: str) -> int:
        return {**DEFAULT_PORTS, **WEB_PORTS}[name] + self.offset

    def terminate(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it hangs. The frozen binary's bootloader passes SIGTERM on
        to the server it started; a SIGKILL would leave that server running on its own."""
        try:
            self.terminate()
        except subprocess.TimeoutExpired:
            self.kill()


def run_cli(*args: str, data_dir: Path, input: str | None = None, command: list[str] | None = None,
            env=None) -> subprocess.CompletedProcess:
    return subprocess.run((command or kotakpos_command()) + ["--data", str(data_dir), *args], input=input,
                          capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


class Terminal:
    """A private tmux server (its own socket: a developer's sessions are never touched)
    running one command in an 80x24 window, the smallest terminal the TUI promises to fit."""

    def __init__(self, command: list[str], cwd: Path | str):
        self.socket = f"kotakpos-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._tmux("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", "-c", str(cwd), *command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              timeout=10).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "tui")

    def wait_for(self, *texts: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{texts} not on screen after {timeout}s:\n{screen}")
            time.sleep(0.2)

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "tui", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
