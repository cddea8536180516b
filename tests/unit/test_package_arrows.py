"""The package arrows of docs/ARCHITECTURE.md hold in the imports (import-linter's contracts
in pyproject.toml): a module importing against them fails here, naming the import chain."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import appliance

REPO = Path(appliance.__file__).parent.parent


def test_every_import_follows_the_arrows_of_the_architecture():
    lint = Path(sys.executable).with_name("lint-imports")
    env = dict(os.environ, PYTHONPATH=str(REPO))  # the tree under test, not an installed copy
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
