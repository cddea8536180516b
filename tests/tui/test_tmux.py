"""``kotakpos tui`` in a real terminal (tmux, 80x24) against ``kotakpos serve`` in its own
process, read back with ``tmux capture-pane`` the way a person would read it."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

from tests.system.process import DEFAULT_PORTS, ServeProcess, Terminal, free_offset, kotakpos_command

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
