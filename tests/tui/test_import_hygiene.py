"""The TUI's boundaries (DESIGN: tui -> admin only; nothing else imports Textual).

Checked in fresh interpreters, so modules imported by other tests cannot hide a leak, and
by reading the TUI's own import statements, since admin itself imports the store.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import appliance.tui

TUI_DIR = Path(appliance.tui.__file__).parent
REPO = TUI_DIR.parent.parent
PROTOCOL_PACKAGES = ("appliance.smtp", "appliance.pop3", "appliance.imap", "appliance.net", "appliance.mta",
                     "appliance.mda", "appliance.auth", "appliance.server")


def modules_after_import(*names: str) -> list[str]:
    code = ("import importlib, json, sys\n"
            f"for name in {list(names)!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_the_server_and_the_protocols_never_import_textual():
    loaded = modules_after_import("appliance.server", "appliance.cli", "appliance.smtp.session",
                                  "appliance.imap.session", "appliance.admin.server", "appliance.admin.client")
    assert "appliance.server" in loaded
    assert [m for m in loaded if m == "textual" or m.startswith("textual.")] == []


def test_the_tui_loads_no_protocol_module():
    loaded = modules_after_import("appliance.tui.app")
    assert "textual" in loaded
    assert [m for m in loaded if m.startswith(PROTOCOL_PACKAGES)] == []


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module)
    return found


def test_the_tui_imports_only_admin_of_the_appliance():
    sources = sorted(TUI_DIR.rglob("*.py"))
    assert len(sources) > 5
    for path in sources:
        ours = {m for m in imports_of(path) if m.startswith("appliance")}
        wrong = {m for m in ours if not m.startswith(("appliance.admin", "appliance.tui"))}
        assert wrong == set(), f"{path.relative_to(REPO)} imports {sorted(wrong)}"
