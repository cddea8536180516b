"""The MDA's commands with no server running (the in-process admin API over the store):
kotakpos quarantine list|show|release|delete, rules ADDRESS get|set|check|list|show, receipts ADDRESS."""

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.store import Store
from tests.mda_helpers import EICAR, plain, wire

ALICE = "alice@example.org"


@pytest.fixture
def data(tmp_path):
    store = Store.in_folder(tmp_path)
    store.add_domain("example.org")
    user = store.add_user(ALICE, "pw")
    raw = b"Return-Path: <bob@remote.test>\r\n" + wire(plain(subject="held", body=EICAR.decode()))
    store.deliver_filtered([], (raw, "bob@remote.test", [user.address], "EICAR test file"))
    store.close()
    return tmp_path


def kotakpos(data, *args, stdin: str | None = None):
    return CliRunner().invoke(main, [*args, "--data", str(data)], input=stdin)


def test_quarantine_list_show_release(data):
    out = kotakpos(data, "quarantine", "list")
    assert out.exit_code == 0 and "EICAR test file" in out.output and "'held'" in out.output
    assert "Subject: held" in kotakpos(data, "quarantine", "show", "1").output
    out = kotakpos(data, "quarantine", "release", "1")
    assert out.exit_code == 0 and f"released 1 to {ALICE}" in out.output
    assert "The quarantine is empty." in kotakpos(data, "quarantine", "list").output
    store = Store.in_folder(data)
    try:
        user = store.get_user(ALICE)
        [row] = store.list_messages(store.get_mailbox(user.id, "INBOX").id)
        assert b"Subject: held" in store.get_raw(row.blob_id)
    finally:
        store.close()


def test_quarantine_delete_and_unknown_id(data):
    assert kotakpos(data, "quarantine", "delete", "1").exit_code == 0
    out = kotakpos(data, "quarantine", "delete", "1")
    assert out.exit_code == 1 and "no quarantined message 1" in out.output


def test_rules_set_get_check_from_stdin_and_file(data, tmp_path):
    script = 'require "fileinto";\nif header :contains "subject" "invoice" { fileinto "Bills"; }\n'
    assert kotakpos(data, "rules", ALICE, "set", stdin=script).exit_code == 0
    assert kotakpos(data, "rules", ALICE, "get").output == script
    bad = tmp_path / "bad.sieve"
    bad.write_text('require "fileinto";\nfileinto "A"\nkeep;\n')
    out = kotakpos(data, "rules", ALICE, "check", str(bad))
    assert out.exit_code == 1 and "line 3: expected ';', found 'keep'" in out.output
    out = kotakpos(data, "rules", ALICE, "set", str(bad))
    assert out.exit_code == 1 and "line 3" in out.output
    assert kotakpos(data, "rules", ALICE, "get").output == script  # the old script stays


def test_rules_act_on_the_active_script_and_list_shows_all(data):
    assert "has no Sieve scripts" in kotakpos(data, "rules", ALICE, "list").output
    store = Store.in_folder(data)
    try:  # the user's own scripts, as ManageSieve stores them
        user_id = store.get_user(ALICE).id
        store.put_sieve_script(user_id, "vacation", "keep;\n", max_scripts=10)
        store.put_sieve_script(user_id, "roundcube", "discard;\n", max_scripts=10)
        store.activate_sieve_script(user_id, "roundcube")
    finally:
        store.close()
    assert kotakpos(data, "rules", ALICE, "get").output == "discard;\n"
    assert kotakpos(data, "rules", ALICE, "set", stdin="stop;\n").exit_code == 0
    lines = kotakpos(data, "rules", ALICE, "list").output.splitlines()
    assert [line.split()[:2] for line in lines] == [["*", "roundcube"], ["vacation", "6"]]
    assert kotakpos(data, "rules", ALICE, "get").output == "stop;\n"


def test_rules_list_and_show_name_the_account_rules_first_then_the_active_script(data):
    store = Store.in_folder(data)
    try:
        user_id = store.get_user(ALICE).id
        store.set_account_rules(user_id, 'require "vacation";\nvacation "Away until Monday.";\n')
        assert kotakpos(data, "rules", ALICE, "list").output.split() == ["+", "(account", "rules)", "51", "runs", "first"]
        store.put_sieve_script(user_id, "office", "discard;\n", max_scripts=10)
        store.put_sieve_script(user_id, "old", "keep;\n", max_scripts=10)
        store.activate_sieve_script(user_id, "office")
    finally:
        store.close()
    lines = kotakpos(data, "rules", ALICE, "list").output.splitlines()
    assert [line.split()[:2] for line in lines] == [["+", "(account"], ["*", "office"], ["old", "6"]]
    assert kotakpos(data, "rules", ALICE, "show", "old").output == "keep;\n"
    assert kotakpos(data, "rules", ALICE, "show").output == (
        "# ---- (account rules), run first ----\n"
        'require "vacation";\nvacation "Away until Monday.";\n'
        "# ---- the active script 'office' ----\n"
        "discard;\n")
    out = kotakpos(data, "rules", ALICE, "show", "nosuch")
    assert out.exit_code == 1 and "no script 'nosuch'" in out.output
    out = kotakpos(data, "rules", ALICE, "set", "/nonexistent/rules.sieve")
    assert out.exit_code == 1 and "cannot read /nonexistent/rules.sieve" in out.output


def test_receipts_policy(data):
    out = kotakpos(data, "receipts", ALICE, "--policy", "auto")
    assert out.exit_code == 0 and "Read-receipt policy: auto" in out.output
    store = Store.in_folder(data)
    try:
        assert store.user_settings(store.get_user(ALICE).id) == {"read_receipts": "auto"}
    finally:
        store.close()


def test_a_deleted_users_rules_do_not_pass_to_the_next_user(data):
    assert kotakpos(data, "rules", ALICE, "set", stdin="discard;\n").exit_code == 0
    store = Store.in_folder(data)
    try:
        old_id = store.get_user(ALICE).id
        store.delete_user(ALICE)
        newcomer = store.add_user("newcomer@example.org", "pw")
        assert newcomer.id == old_id  # SQLite gives the freed id again
        assert store.get_sieve(newcomer.id) == ""
    finally:
        store.close()


def test_rules_check_warns_about_fileinto_a_missing_folder(data):
    store = Store.in_folder(data)
    store.create_mailbox(store.get_user(ALICE).id, "Bills")
    store.close()
    script = ('require ["fileinto", "mailbox"];\nif header :contains "subject" "invoice" {\n  fileinto "Invoices";\n}\n'
              'fileinto "Bills";\nfileinto :create "Receipts";\nif mailboxexists "Travel" { fileinto "Travel"; }\n')
    out = CliRunner().invoke(main, ["rules", ALICE, "check", "--data", str(data)], input=script)
    assert out.exit_code == 0 and "the script is valid" in out.stdout
    assert out.stderr.splitlines() == [f'warning: line 3: fileinto "Invoices": {ALICE} has no such folder, so this '
                                       'mail goes to INBOX (create it, or use fileinto :create)']
