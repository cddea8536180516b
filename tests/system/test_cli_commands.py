"""The rough edges of the command line, as a new administrator meets them: queue ids from
the SMTP reply, sizes as people type them, typos in aliases, backups that would overwrite,
a command run in the wrong folder, and help for every command."""

from __future__ import annotations

import os
import smtplib
import subprocess

import click
import pytest
from click.testing import CliRunner

from appliance.cli import main
from tests.protocol.smtp_wire import relay_test_server
from tests.system.process import kotakpos_command, run_cli


def cli(data, *args: str, input: str | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["--data", str(data), *args], input=input, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def office(data) -> None:
    cli(data, "domain", "add", "example.org")
    cli(data, "user", "add", "alice@example.org", "--password-stdin", input="pw\n")


def send(srv, recipients: list[str]) -> str:
    """Relay a message from a trusted network; return the id of "250 2.0.0 OK queued as ID"."""
    with smtplib.SMTP("127.0.0.1", srv.port("smtp")) as client:
        client.ehlo("client.test")
        client.mail("alice@example.org")
        for r in recipients:
            client.rcpt(r)
        code, text = client.data(b"Subject: out\r\n\r\nx\r\n")
    assert code == 250, text
    return text.decode().rpartition(" ")[2]


def test_queue_ids_from_the_smtp_reply_work_and_are_never_reused(make_server):
    srv = relay_test_server(make_server, auth={"trusted_networks": ["127.0.0.0/8"]})
    srv.add_user("alice@example.org")
    message_id = send(srv, ["a@remote.test", "b@remote.test"])
    rows = srv.store.list_queue()
    assert len(rows) == 2

    shown = cli(srv.data_dir, "queue", "show", message_id)  # as "250 2.0.0 OK queued as <id>" says
    assert "a@remote.test" in shown and "b@remote.test" in shown
    assert "a@remote.test" in cli(srv.data_dir, "queue", "show", str(rows[0].id))

    highest = max(r.id for r in rows)
    assert "deleted 1 of 1 entry" in cli(srv.data_dir, "queue", "delete", str(highest))
    send(srv, ["c@remote.test"])
    assert max(r.id for r in srv.store.list_queue()) > highest  # the deleted id names nothing new

    out = cli(srv.data_dir, "queue", "delete", "99", code=1)
    assert "no queue entry 99" in out and "deleted" not in out
    assert "no queue entry 0000000000000000" in cli(srv.data_dir, "queue", "show", "0000000000000000", code=1)
    assert "neither a queue id" in cli(srv.data_dir, "queue", "retry", "not-an-id", code=1)


@pytest.mark.parametrize("typed, stored", [("2G", 2 * 1024 ** 3), ("500M", 500 * 1024 ** 2),
                                           ("1.5G", int(1.5 * 1024 ** 3)), ("3000000", 3000000), ("0", 0)])
def test_quotas_are_typed_as_people_write_them(tmp_path, typed, stored):
    office(tmp_path)
    cli(tmp_path, "user", "quota", "alice@example.org", typed)
    expected = f"quota {stored} bytes" if stored else "quota unlimited"
    assert expected in cli(tmp_path, "user", "list")


def test_a_quota_that_is_no_size_is_refused_and_user_add_takes_sizes_too(tmp_path):
    office(tmp_path)
    assert "is not a size" in cli(tmp_path, "user", "quota", "alice@example.org", "lots", code=2)
    cli(tmp_path, "user", "add", "bob@example.org", "--quota", "250M", "--password-stdin", input="pw\n")
    assert f"quota {250 * 1024 ** 2} bytes" in cli(tmp_path, "user", "list")


def test_an_alias_to_a_local_address_nobody_has_is_refused_with_a_hint(tmp_path):
    office(tmp_path)
    out = cli(tmp_path, "alias", "add", "team@example.org", "alcie@example.org", code=1)
    assert "did you mean alice@example.org?" in out
    assert cli(tmp_path, "alias", "list") == ""
    cli(tmp_path, "alias", "add", "team@example.org", "alice@example.org", "friend@elsewhere.test")
    cli(tmp_path, "alias", "add", "all@example.org", "team@example.org")  # another alias is a target too
    assert "team@example.org -> alice@example.org, friend@elsewhere.test" in cli(tmp_path, "alias", "list")


def test_backup_does_not_overwrite_without_force(tmp_path):
    office(tmp_path / "data")
    target = tmp_path / "copy.sqlite"
    target.write_bytes(b"last week's backup")
    out = cli(tmp_path / "data", "backup", str(target), code=1)
    assert "--force" in out and target.read_bytes() == b"last week's backup"
    assert "backed up" in cli(tmp_path / "data", "backup", str(target), "--force")
    assert target.read_bytes().startswith(b"SQLite format 3")


def test_a_command_outside_any_data_folder_creates_nothing_and_says_where_it_looked(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KOTAKPOS_DATA", "KOTAKPOS_CONFIG")}
    for args in (["user", "list"], ["queue", "list"], ["alias", "add", "a@example.org", "b@example.org"],
                 ["backup", "x.sqlite"], ["export", "a@example.org", "--format", "mbox", "out"]):
        done = subprocess.run(kotakpos_command() + args, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 1, (args, done.stderr)
        assert f"no Kotakpos store in {tmp_path / 'kotakpos-data'}" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []
    done = subprocess.run(kotakpos_command() + ["domain", "add", "example.org"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and f"creating a new Kotakpos store in {tmp_path / 'kotakpos-data'}" in done.stderr
    assert (tmp_path / "kotakpos-data" / "kotakpos.sqlite").exists()


def test_every_command_has_help_and_no_raw_markup():
    def walk(command, path):
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])

    for path, command in walk(main, []):
        assert (command.help or "").strip(), f"kotakpos {' '.join(path)} has no help text"
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0 and "``" not in result.output, result.output
    assert "kotakpos backup verify FILE" in CliRunner().invoke(main, ["backup", "--help"]).output


def test_the_real_command_lists_the_queue_through_a_running_server(tmp_path):
    """The same commands over the admin socket of a real ``kotakpos serve``."""
    from tests.system.process import ServeProcess
    data = tmp_path / "data"
    proc = ServeProcess(data)
    try:
        proc.wait_ready()
        assert "The queue is empty." in run_cli("queue", "list", data_dir=data).stdout
        done = run_cli("queue", "delete", "7", data_dir=data)
        assert done.returncode == 1 and "no queue entry 7" in done.stderr
    finally:
        proc.terminate()
