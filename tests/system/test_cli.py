"""The account commands as an administrator types them, with and without a running server."""

import pytest

from tests.system.process import ServeProcess, run_cli


def ok(result):
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result, text):
    assert result.returncode != 0
    message = result.stderr.strip()
    assert text in message and len(message.splitlines()) == 1, message
    return message


def lifecycle(data):
    assert "added domain example.org" in ok(run_cli("domain", "add", "Example.ORG", data_dir=data))
    ok(run_cli("user", "add", "alice@example.org", "--password-stdin", data_dir=data, input="pw1\n"))
    ok(run_cli("user", "add", "bob@example.org", "--password-stdin", "--quota", "1000000", data_dir=data, input="pw\n"))
    users = ok(run_cli("user", "list", data_dir=data))
    assert "alice@example.org" in users and "quota 1000000 bytes" in users
    ok(run_cli("user", "passwd", "alice@example.org", "--password-stdin", data_dir=data, input="pw2\n"))
    ok(run_cli("alias", "add", "team@example.org", "alice@example.org", "bob@example.org", data_dir=data))
    ok(run_cli("alias", "add", "@example.org", "alice@example.org", data_dir=data))
    aliases = ok(run_cli("alias", "list", data_dir=data))
    assert "team@example.org -> alice@example.org, bob@example.org" in aliases
    assert "@example.org -> alice@example.org" in aliases

    refused(run_cli("user", "add", "carol@nowhere.org", "--password-stdin", data_dir=data, input="x\n"), "unknown domain")
    refused(run_cli("user", "add", "not-an-address", "--password-stdin", data_dir=data, input="x\n"), "not a valid")
    refused(run_cli("user", "add", "alice@example.org", "--password-stdin", data_dir=data, input="x\n"), "already exists")
    refused(run_cli("alias", "add", "bob@example.org", "team@example.org", data_dir=data), "loop")
    refused(run_cli("domain", "add", "bad_domain!", data_dir=data), "not a valid domain")
    refused(run_cli("domain", "del", "example.org", data_dir=data), "still has 2 user")
    assert ok(run_cli("alias", "list", data_dir=data)) == aliases  # the refused loop changed nothing

    ok(run_cli("alias", "del", "team@example.org", data_dir=data))
    ok(run_cli("user", "del", "bob@example.org", data_dir=data))
    ok(run_cli("user", "del", "alice@example.org", data_dir=data))
    ok(run_cli("alias", "del", "@example.org", data_dir=data))
    ok(run_cli("domain", "del", "example.org", data_dir=data))
    assert ok(run_cli("domain", "list", data_dir=data)) == ""


def test_account_lifecycle_without_a_server(tmp_path):
    lifecycle(tmp_path / "data")


def test_account_lifecycle_through_a_running_server(tmp_path):
    data = tmp_path / "data"
    proc = ServeProcess(data)
    try:
        proc.wait_ready()
        lifecycle(data)
    finally:
        proc.terminate()


def test_passwords_never_reach_the_log_or_the_store_in_clear(tmp_path):
    data = tmp_path / "data"
    proc = ServeProcess(data)
    try:
        proc.wait_ready()
        ok(run_cli("domain", "add", "example.org", data_dir=data))
        ok(run_cli("user", "add", "alice@example.org", "--password-stdin", data_dir=data, input="Sup3rSecretPw\n"))
    finally:
        proc.terminate()
    assert "Sup3rSecretPw" not in proc.log
    assert b"Sup3rSecretPw" not in (data / "kotakpos.sqlite").read_bytes()


def test_password_is_required_without_a_terminal(tmp_path):
    data = tmp_path / "data"
    ok(run_cli("domain", "add", "example.org", data_dir=data))
    result = run_cli("user", "add", "alice@example.org", data_dir=data, input="")
    assert result.returncode != 0 and "--password-stdin" in result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_data_option_before_or_after_the_subcommand(tmp_path, where):
    import subprocess, sys
    data = tmp_path / "data"
    args = ["domain", "add", "example.org"]
    cmd = [sys.executable, "-m", "appliance"] + (["--data", str(data)] + args if where == "before"
                                                 else ["domain", "add", "--data", str(data), "example.org"])
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    assert ok(run_cli("domain", "list", data_dir=data)).split() == ["example.org"]
