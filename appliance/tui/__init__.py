"""The terminal UI: the whole server administered from one terminal (Textual).

It talks only to ``appliance.admin`` — an ``AdminAPI`` in this process (``kotakpos serve
--tui``) or an ``AdminClient`` over the admin socket (``kotakpos tui``), which have the same
methods — and it is the only package that imports Textual (tests/tui/test_import_hygiene.py
checks both). ``app`` holds the application and its link to the server, ``screens`` one
module per screen, ``forms`` the modal forms, ``models`` formatting without widgets.
"""

from __future__ import annotations

from pathlib import Path


def run_tui(admin) -> None:
    """Run the TUI over an in-process admin API until the user quits."""
    from appliance.tui.app import in_process
    in_process(admin).run()


def attach(socket_path: Path) -> None:
    """Run the TUI against the server behind ``socket_path`` until the user quits.

    Starts even when no server answers yet: it says so and connects once one does.
    """
    from appliance.tui.app import attach as attached_app
    attached_app(Path(socket_path)).run()
