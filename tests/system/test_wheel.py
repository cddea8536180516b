"""README's install, ``pip install .``, as a user gets it: a wheel built from the committed
files, installed (not editable) into a fresh virtual environment, and its ``kotakpos``
running the server and the TUI.

The environment sees the system's site-packages for the dependencies (installing textual,
cryptography and the rest again would take a minute and prove nothing about kotakpos), so
the fixture first checks that ``appliance`` is imported from the wheel's copy and not from
a development checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.system.process import NO_DNS_CONFIG, ServeProcess, Terminal, free_offset

ROOT = Path(__file__).resolve().parents[2]


class Installed:
    """The wheel, and the virtual environment it is installed in."""

    def __init__(self, folder: Path):
        self.folder = folder
        source = folder / "source"
        # Only what git tracks: a file the wheel needs but nobody committed must fail here.
        tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True,
                                 timeout=60).stdout.decode().split("\0")
        for name in filter(None, tracked):
            if (ROOT / name).is_file():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, source / name)
        self.tracked = [name for name in tracked if name]
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder / "dist"), str(source)], check=True, timeout=300)
        [self.wheel] = (folder / "dist").glob("kotakpos-*.whl")
        self.venv = folder / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(self.venv)],
                       check=True, timeout=120)
        subprocess.run([*pip, "--python", str(self.venv / "bin" / "python"), "install", "--no-deps",
                        "--ignore-installed", str(self.wheel)], check=True, timeout=300)
        self.kotakpos = self.venv / "bin" / "kotakpos"
        # No PYTHONPATH (the tests' own points at the checkout) and no data folder from outside.
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("KOTAKPOS_")}
        self.package = Path(subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", "import appliance; print(appliance.__file__)"],
            cwd=folder, env=self.env, capture_output=True, text=True, check=True, timeout=60).stdout.strip()).parent

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.kotakpos), *args], cwd=self.folder, env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    wheel = Installed(tmp_path_factory.mktemp("wheel"))
    assert wheel.package.is_relative_to(wheel.venv), f"appliance imported from {wheel.package}, not the wheel"
    return wheel


def test_the_wheel_holds_every_file_the_package_reads(installed):
    in_wheel = set(zipfile.ZipFile(installed.wheel).namelist())
    data_files = [name for name in installed.tracked
                  if name.startswith("appliance/") and not name.endswith(".py")]
    assert "appliance/tui/kotakpos.tcss" in data_files
    assert [name for name in data_files if name not in in_wheel] == []


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_installed_tui_shows_its_dashboard_and_exits_0_on_quit(installed):
    server = ServeProcess(installed.folder / "data", command=[str(installed.kotakpos)], env=installed.env)
    terminal = None
    try:
        server.wait_ready()
        # The shell keeps the pane open after kotakpos exits, so its exit status stays readable.
        command = f"env -u PYTHONPATH {installed.kotakpos} --data {server.data_dir} tui; echo exited $?; sleep 60"
        terminal = Terminal(["sh", "-c", command], cwd=installed.folder)
        screen = terminal.wait_for("Listeners on 127.0.0.1", "Sessions  0")
        assert str(server.port("imap")) in screen
        terminal.send("C-q")
        terminal.wait_for("exited 0")
    finally:
        if terminal is not None:
            terminal.close()
        server.stop()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_tui_that_crashes_exits_non_zero_and_serve_tui_says_the_server_stopped(installed):
    """A crash: the install has lost the stylesheet, as the wheel once did."""
    stylesheet = installed.package / "tui" / "kotakpos.tcss"
    hidden = stylesheet.with_suffix(".hidden")
    stylesheet.rename(hidden)
    data = installed.folder / "serve-tui"
    data.mkdir()
    (data / "kotakpos.toml").write_text(NO_DNS_CONFIG)
    attached = f"{installed.kotakpos} --data {installed.folder / 'data'} tui"
    served = f"{installed.kotakpos} serve --data {data} --listen 127.0.0.1 --port-offset {free_offset()} --tui"
    try:
        for command, says in ((attached, "Error: the terminal UI failed (see above)"),
                              (served, "Error: the terminal UI failed (see above); the server has stopped")):
            # The shell keeps the pane open after kotakpos exits, so what it printed stays readable.
            terminal = Terminal(["sh", "-c", f"env -u PYTHONPATH {command}; echo exited $?; sleep 60"],
                                cwd=installed.folder)
            try:
                screen = terminal.wait_for("exited", timeout=60)
                assert "exited 0" not in screen
                assert says in screen
            finally:
                terminal.close()
    finally:
        hidden.rename(stylesheet)


def test_the_tui_without_a_terminal_says_so_at_once(installed):
    """Run from a script or a pipe, the TUI would run unseen; it refuses instead."""
    for args in (["--data", str(installed.folder / "data"), "tui"],
                 ["serve", "--data", str(installed.folder / "no-serve"), "--tui"]):
        result = installed.run(*args, timeout=20)
        assert result.returncode != 0
        assert "the terminal UI needs a terminal" in result.stderr
    assert not (installed.folder / "no-serve").exists()
