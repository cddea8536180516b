"""packaging/: the example config matches the schema, the systemd unit is valid and
hardened, and install.sh installs then upgrades (into a temp root, with stand-ins for
useradd, getent, chown and systemctl on PATH, so no systemd or root is needed)."""

from __future__ import annotations

import importlib.util
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from appliance.config import Config, load
from appliance.launch import MALLOC_TUNABLES

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def _make_example_config():
    spec = importlib.util.spec_from_file_location("make_example_config", PACKAGING / "make_example_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_config_is_the_generated_text():
    committed = (PACKAGING / "kotakpos.toml.example").read_text(encoding="utf-8")
    assert committed == _make_example_config().example_text(), \
        "packaging/kotakpos.toml.example is out of date: run python packaging/make_example_config.py"


def test_example_config_loads_as_the_defaults():
    assert load(PACKAGING / "kotakpos.toml.example") == Config()


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (PACKAGING / "kotakpos.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_runs_unprivileged_with_only_the_bind_capability():
    unit = _unit_settings()
    assert unit["User"] == ["kotakpos"]
    assert unit["ExecStart"] == ["/usr/local/bin/kotakpos serve --data /var/lib/kotakpos"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["AmbientCapabilities"] == unit["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert unit[key] == ["yes"], key
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/var/lib/kotakpos"]
    assert unit["Restart"] == ["on-failure"]


def test_unit_turns_the_per_thread_malloc_cache_off():
    assert _unit_settings()["Environment"] == [f"GLIBC_TUNABLES={MALLOC_TUNABLES}"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # verify insists that ExecStart exists; point it at a stand-in, keep everything else.
    fake = tmp_path / "kotakpos"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    unit = tmp_path / "kotakpos.service"
    unit.write_text((PACKAGING / "kotakpos.service").read_text().replace("/usr/local/bin/kotakpos", str(fake)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_install_sh_is_valid_bash():
    subprocess.run(["bash", "-n", str(PACKAGING / "install.sh")], check=True)


# -- install.sh in a temp root ---------------------------------------------------------------

STAND_INS = {
    # Each records its arguments; getent knows the users useradd made; systemctl keeps
    # whether the service runs in a file, so a second install sees it running.
    "useradd": 'echo "useradd $*" >> "$FAKE/calls"; echo "${@: -1}" >> "$FAKE/users"\n',
    "getent": 'grep -qx "$2" "$FAKE/users" 2>/dev/null\n',
    "chown": 'echo "chown $*" >> "$FAKE/calls"\n',
    "systemctl": (
        'echo "systemctl $*" >> "$FAKE/calls"\n'
        'case "$1" in\n'
        '  is-active) [ -e "$FAKE/active" ] ;;\n'
        '  start) touch "$FAKE/active" ;;\n'
        '  stop) rm -f "$FAKE/active" ;;\n'
        'esac\n'
    ),
}


class Box:
    """A temp root, stand-ins on PATH, and helpers to run install.sh into it."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "root"
        self.fake = tmp_path / "fake"
        self.fake.mkdir()
        for name, body in STAND_INS.items():
            self._script(self.fake / name, body)

    def _script(self, path: Path, body: str) -> Path:
        path.write_text("#!/usr/bin/env bash\n" + body)
        path.chmod(0o755)
        return path

    def binary(self, version: str) -> Path:
        return self._script(self.fake.parent / f"kotakpos-{version}",
                            f'[ "$1" = --version ] && echo "kotakpos, version {version}"\n')

    def install(self, binary: Path) -> subprocess.CompletedProcess:
        env = {"PATH": f"{self.fake}:/usr/bin:/bin", "DESTDIR": str(self.root), "FAKE": str(self.fake)}
        return subprocess.run(["bash", str(PACKAGING / "install.sh"), str(binary)], env=env,
                              capture_output=True, text=True, timeout=60)

    def calls(self) -> list[str]:
        path = self.fake / "calls"
        lines = path.read_text().splitlines() if path.exists() else []
        path.unlink(missing_ok=True)
        return lines


def test_install_places_everything_and_starts_the_service(tmp_path):
    box = Box(tmp_path)
    result = box.install(box.binary("0.1.0"))
    assert result.returncode == 0, result.stderr
    installed = box.root / "usr/local/bin/kotakpos"
    assert installed.read_bytes() == box.binary("0.1.0").read_bytes()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o755
    unit = box.root / "etc/systemd/system/kotakpos.service"
    assert unit.read_text() == (PACKAGING / "kotakpos.service").read_text()
    data = box.root / "var/lib/kotakpos"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    calls = box.calls()
    assert calls[0].startswith("useradd --system") and calls[0].endswith(" kotakpos")
    assert f"chown kotakpos:kotakpos {data}" in calls
    assert calls[-3:] == ["systemctl daemon-reload", "systemctl enable kotakpos", "systemctl start kotakpos"]
    assert "installed version 0.1.0" in result.stdout
    assert "Next steps" in result.stdout
    assert "domain add example.org" in result.stdout and "user add alice@example.org" in result.stdout


def test_running_it_again_upgrades_stop_replace_start(tmp_path):
    box = Box(tmp_path)
    assert box.install(box.binary("0.1.0")).returncode == 0
    box.calls()
    result = box.install(box.binary("0.2.0"))
    assert result.returncode == 0, result.stderr
    assert (box.root / "usr/local/bin/kotakpos").read_bytes() == box.binary("0.2.0").read_bytes()
    calls = box.calls()
    assert not any(c.startswith("useradd") for c in calls), calls  # the user exists already
    stop, start = calls.index("systemctl stop kotakpos"), calls.index("systemctl start kotakpos")
    assert stop < start
    assert "upgraded Kotakpos to version 0.2.0" in result.stdout
    assert "Next steps" not in result.stdout


def test_install_refuses_a_missing_or_broken_binary(tmp_path):
    box = Box(tmp_path)
    missing = box.install(tmp_path / "nowhere")
    assert missing.returncode != 0 and "no kotakpos binary" in missing.stderr
    broken = box._script(tmp_path / "broken", "exit 126\n")
    result = box.install(broken)
    assert result.returncode != 0 and "does not run on this machine" in result.stderr
    assert not (box.root / "usr/local/bin/kotakpos").exists()
    assert box.calls() == []
