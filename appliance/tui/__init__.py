"""The terminal UI: the whole server administered from one terminal (Textual).

It talks only to ``appliance.admin`` — an ``AdminAPI`` in this process (``kotakpos serve
--tui``) or an ``AdminClient`` over the admin socket (``kotakpos tui``), which have the same
methods — and it is the only package that imports Textual (tests/tui/test_import_hygiene.py
checks both). ``app`` holds the application and its link to the server, ``screens`` one
module per screen, ``forms`` the modal forms, ``models`` formatting without widgets.
"""

from __future__ import annotations

from pathlib import Path


def run_tui(admin) -> int:
    """Run the TUI over an in-process admin API until the user quits; returns its exit
    status: 0 when the user quit, 1 when it crashed (Textual has printed why).

    While the TUI owns the terminal, the server's log lines go to its Log screen (and to
    the log file, if one is configured) instead of being written across the screen.
    """
    from appliance.admin.logtail import back_on_terminal, off_terminal
    from appliance.tui.app import in_process
    on_terminal = off_terminal()
    app = in_process(admin)
    try:
        app.run()
    finally:
        back_on_terminal(on_terminal)
    return app.return_code or 0


def attach(socket_path: Path) -> int:
    """Run the TUI against the server behind ``socket_path`` until the user quits; returns
    its exit status as ``run_tui`` does.

    Starts even when no server answers yet: it says so and connects once one does.
    """
    from appliance.tui.app import attach as attached_app
    app = attached_app(Path(socket_path))
    app.run()
    return app.return_code or 0
