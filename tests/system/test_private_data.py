"""Mail data is private whatever umask the server starts with, and a start says what to fix."""

import os
import stat
from contextlib import contextmanager

from tests.mda_helpers import wait_for
from tests.system.process import ServeProcess, run_cli


@contextmanager
def umask(mask: int):
    """Children started inside inherit ``mask``, as from root's login shell (022)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes_under(folder) -> dict[str, int]:
    return {str(p): stat.S_IMODE(p.lstat().st_mode) for p in [folder, *folder.rglob("*")]}


def test_everything_is_created_private_under_root_umask_and_a_bare_hostname_is_logged(tmp_path):
    data, config = tmp_path / "data", tmp_path / "kotakpos.toml"
    config.write_text('[server]\nhostname = "vm"\n[dns]\nresolver = "none"\n[backup]\ninterval = 1.0\n')
    with umask(0o022):
        proc = ServeProcess(data, env={"KOTAKPOS_CONFIG": str(config)})
        try:
            proc.wait_ready()
            assert run_cli("domain", "add", "example.org", data_dir=data).returncode == 0
            assert run_cli("user", "add", "alice@example.org", "--password-stdin", input="pw\n",
                           data_dir=data).returncode == 0
            wait_for(lambda: list((data / "snapshots").glob("*.sqlite")), timeout=20.0, what="the first snapshot")
            backup = tmp_path / "out" / "office.sqlite"
            assert run_cli("backup", "now", str(backup), data_dir=data).returncode == 0
            exported = tmp_path / "export"
            assert run_cli("export", "alice@example.org", "--format", "mbox", str(exported),
                           data_dir=data).returncode == 0
            modes = modes_under(data)  # while it runs: the -wal and -shm files exist
        finally:
            assert proc.terminate() == 0
    for name in ("kotakpos.sqlite", "kotakpos.sqlite-wal", "kotakpos.sqlite-shm", "kotakpos-search.sqlite",
                 "kotakpos-search.sqlite-wal", "tls/key.pem", "admin.sock"):
        assert str(data / name) in modes, name
    assert list((data / "snapshots").glob("*.sqlite"))
    exposed = {path: f"{mode:04o}" for path, mode in modes.items() if mode & 0o077}
    assert exposed == {}
    assert modes[str(data)] == 0o700
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert {f"{m:04o}" for m in modes_under(exported).values()} <= {"0700", "0600"}
    assert "server.hostname 'vm' is not a fully qualified domain name" in proc.log
    assert 'under [server]: hostname = "mail.example.org"' in proc.log
    assert "open to other users" not in proc.log


def test_a_start_warns_of_mail_data_others_can_read_with_the_chmod(tmp_path):
    data = tmp_path / "data"
    first = ServeProcess(data)
    try:
        first.wait_ready()
    finally:
        first.terminate()
    data.chmod(0o755)
    (data / "kotakpos.sqlite").chmod(0o644)
    again = ServeProcess(data)
    try:
        again.wait_ready()
    finally:
        again.terminate()
    assert f"the data folder {data} is open to other users (mode 0755): fix it with chmod 700 {data}" in again.log
    assert f"fix it with chmod 600 {data / 'kotakpos.sqlite'}" in again.log
    assert "WARNING" in next(line for line in again.log_lines if "chmod 700" in line)
