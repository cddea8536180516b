"""The ``kotakpos`` command's first step (appliance/launch.py): ``serve`` runs itself again
with the malloc tunable before anything heavy is imported."""

import os
import platform
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from appliance.launch import restart_with_malloc_tunables, subcommand


@pytest.mark.parametrize("args, found", [
    (["serve", "--port-offset", "1000"], "serve"),
    (["--data", "serve", "status"], "status"),  # a folder named serve
    (["--config", "/etc/k.toml", "--data=/srv/k", "serve"], "serve"),
    (["--", "serve"], "serve"),
    (["--version"], None),
    ([], None),
])
def test_the_subcommand_is_found_past_the_groups_options(args, found):
    assert subcommand(args) == found


GLIBC_ONLY = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc tunable")


@GLIBC_ONLY
@pytest.mark.parametrize("before, after", [
    (None, "glibc.malloc.tcache_count=0"),
    ("glibc.malloc.arena_max=2", "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0"),  # the user's kept
    ("glibc.malloc.tcache_count=3", None),  # the user's choice stands, and it runs once only
])
def test_serve_restarts_itself_once_with_the_malloc_tunable(monkeypatch, before, after):
    if before is None:
        monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    else:
        monkeypatch.setenv("GLIBC_TUNABLES", before)
    started = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: started.append((path, argv, env)))
    restart_with_malloc_tunables()
    if after is None:
        assert started == []
    else:
        [(path, argv, env)] = started
        assert path == sys.executable and argv[1:] == sys.orig_argv[1:]
        assert env["GLIBC_TUNABLES"] == after


def test_every_way_in_starts_at_the_launcher():
    root = Path(__file__).resolve().parents[2]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kotakpos"] == "appliance.launch:main"  # the console script
    # python -m appliance, and the frozen binary (build/kotakpos.spec's entry script)
    assert "from appliance.launch import main" in (root / "appliance" / "__main__.py").read_text()


@GLIBC_ONLY
def test_the_restart_comes_before_any_heavy_import():
    # what the first image imports is thrown away by the exec: it must be only the launcher
    probe = ("import sys, os; os.execve = lambda *a: (print(sorted(m for m in sys.modules if m.startswith('appliance') "
             "or m in ('click', 'textual', 'sqlite3', 'ssl'))), sys.exit(0)); "
             "sys.argv = ['kotakpos', 'serve']; import appliance.launch; appliance.launch.main()")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['appliance', 'appliance.launch']"


@GLIBC_ONLY
def test_the_frozen_binary_runs_itself_again_with_its_own_arguments(monkeypatch):
    # sys.executable is the binary; the bootloader's child finds its unpacked files through
    # the environment, which goes along
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setenv("_PYI_APPLICATION_HOME_DIR", "/tmp/_MEIxyz")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "argv", ["./kotakpos", "serve", "--data", "/srv/k"])
    started = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: started.append((path, argv, env)))
    restart_with_malloc_tunables()
    [(path, argv, env)] = started
    assert path == sys.executable and argv == [sys.executable, "serve", "--data", "/srv/k"]
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.tcache_count=0" and env["_PYI_APPLICATION_HOME_DIR"] == "/tmp/_MEIxyz"
