"""``kotakpos tui`` in a real terminal (tmux, 80x24) against ``kotakpos serve`` in its own
process, read back with ``tmux capture-pane`` the way a person would read it."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import socket
from pathlib import Path

import pytest

from appliance.admin.client import AdminClient
from tests.system.process import (DEFAULT_PORTS, NO_DNS_CONFIG, ServeProcess, Terminal, free_offset,
                                  kotakpos_command)

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_kotakpos_tui_in_tmux_shows_the_live_dashboard(tmp_path):
    server = ServeProcess(tmp_path / "data")
    terminal = None
    try:
        server.wait_ready()
        terminal = Terminal(kotakpos_command() + ["--data", str(server.data_dir), "tui"], cwd=REPO)
        screen = terminal.wait_for("Listeners on 127.0.0.1", "Sessions  0", "Messages per minute")
        imap_row = next(line for line in screen.splitlines() if "│ imap " in line)
        assert str(server.port("imap")) in imap_row and "listening" in imap_row
        assert "Dash" in screen.splitlines()[0] and "^q Quit" in screen.splitlines()[0]

        with socket.create_connection(("127.0.0.1", server.port("imap")), timeout=5) as client:
            client.recv(1000)
            terminal.wait_for("Sessions  1 (imap 1)")
        terminal.wait_for("Sessions  0")

        server.terminate()
        terminal.wait_for("SERVER UNREACHABLE")
    finally:
        if terminal is not None:
            terminal.close()
        server.kill()


def test_serve_with_tui_shows_the_server_in_the_same_process_and_stops_it_on_quit(tmp_path):
    offset = free_offset()
    data = tmp_path / "data"
    # The shell keeps the pane open after kotakpos exits, so its last words stay readable.
    command = " ".join(kotakpos_command() + ["serve", "--data", str(data), "--listen", "127.0.0.1",
                                             "--port-offset", str(offset), "--tui"])
    terminal = Terminal(["sh", "-c", f"{command}; echo exited $?; sleep 60"], cwd=REPO)
    try:
        screen = terminal.wait_for("Listeners on 127.0.0.1", "Sessions  0")
        assert str(DEFAULT_PORTS["imap"] + offset) in screen
        assert "INFO" not in screen     # the log goes to the Log screen, not across the dashboard
        terminal.send("7")
        terminal.wait_for("Server log", "ready smtp=127.0.0.1")
        terminal.send("C-q")
        screen = terminal.wait_for("exited 0")
        assert "stopped" in screen
    finally:
        terminal.close()


def serve_with_tui_and_two_workers(tmp_path) -> tuple[Terminal, Path, int]:
    """``kotakpos serve --tui`` with ``[server] workers = 2`` in an 80x24 tmux pane, on its
    dashboard; returns the pane, the data folder and the port offset."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "kotakpos.toml").write_text(NO_DNS_CONFIG + "[server]\nworkers = 2\n")
    offset = free_offset()
    command = " ".join(kotakpos_command() + ["serve", "--data", str(data), "--listen", "127.0.0.1",
                                             "--port-offset", str(offset), "--tui"])
    terminal = Terminal(["sh", "-c", f"{command}; echo exited $?; sleep 60"], cwd=REPO)
    terminal.wait_for("Listeners on 127.0.0.1", "Workers: 2")
    return terminal, data, offset


def workers_of(data: Path) -> tuple[int, list[dict]]:
    """The supervisor's pid and the workers, as the admin API gives them."""
    client = AdminClient(data / "admin.sock")
    try:
        return client.status()["pid"], client.workers()
    finally:
        client.close()


def children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(child) for child in f.read().split()}


def test_serve_with_tui_and_workers_shows_them_while_they_serve_and_stops_them_on_quit(tmp_path):
    terminal, data, offset = serve_with_tui_and_two_workers(tmp_path)
    try:
        supervisor, workers = workers_of(data)
        screen = terminal.wait_for(*(f" {w['pid']} " for w in workers))
        assert "INFO" not in screen     # no process writes its log across the TUI
        with smtplib.SMTP("127.0.0.1", DEFAULT_PORTS["smtp"] + offset, timeout=10) as smtp:
            assert smtp.noop()[0] == 250    # the workers serve beside the TUI
            terminal.wait_for("smtp 1")
        killed = workers[1]["pid"]
        os.kill(killed, signal.SIGKILL)
        screen = terminal.wait_for("1, SIGKILL")    # restarts and the last exit, on the dashboard
        row = next(line for line in screen.splitlines() if "1, SIGKILL" in line)
        assert str(killed) not in row

        terminal.send("7")      # the log view has the supervisor's lines and the new worker's
        new = workers_of(data)[1][1]["pid"]
        terminal.wait_for(f"server[{supervisor}]", f"(pid {killed}) killed by signal 9", f"server[{new}]")

        terminal.send("C-q")
        screen = terminal.wait_for("exited 0")
        assert "stopped" in screen
        for pid in (supervisor, workers[0]["pid"], new):
            assert not os.path.exists(f"/proc/{pid}")
    finally:
        terminal.close()


def test_serve_with_tui_and_workers_exits_non_zero_when_the_tui_dies(tmp_path):
    terminal, data, _ = serve_with_tui_and_two_workers(tmp_path)
    try:
        supervisor, workers = workers_of(data)
        tui, = children(supervisor) - {w["pid"] for w in workers}
        os.kill(tui, signal.SIGKILL)
        screen = terminal.wait_for("exited 1")
        assert "the terminal UI failed" in screen and "the server has stopped" in screen
        assert not any(os.path.exists(f"/proc/{w['pid']}") for w in workers)
    finally:
        terminal.close()
