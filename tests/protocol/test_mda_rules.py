"""Per-user Sieve rules on mail received by SMTP: fileinto (with :create), mailboxexists, redirect,
reject, vacation once per sender."""

import logging
import smtplib

import pytest

from appliance.admin.api import AdminError
from tests.mda_helpers import folder, imap_folders, plain, send

ALICE, BOB = "alice@example.org", "bob@example.org"


@pytest.fixture
def office(make_server):
    # remote mail waits in the queue (nothing listens on port 9), where the test can see it
    server = make_server(mta={"routes": {"remote.test": "127.0.0.1:9", "elsewhere.test": "127.0.0.1:9"}})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    server.add_user(BOB)
    return server


def queued(server) -> list[tuple[str, str]]:
    return [(row.sender, row.recipient) for row in server.store.list_queue()]


def test_fileinto_a_folder(office):
    office.store.create_mailbox(office.store.get_user(ALICE).id, "Bills")
    office.admin.rules_set(ALICE, 'require "fileinto";\nif header :contains "subject" "invoice" { fileinto "Bills"; }')
    send(office, plain(subject="Invoice 42"))
    send(office, plain(subject="lunch"))
    [bill] = folder(office, ALICE, "Bills")
    [lunch] = folder(office, ALICE)
    assert b"Invoice 42" in bill and b"lunch" in lunch


def test_redirect_to_a_colleague_and_outside(office):
    office.admin.rules_set(ALICE, 'redirect "bob@example.org";\nredirect "alice@elsewhere.test";')
    send(office, plain(subject="pass it on"))
    assert folder(office, ALICE) == []
    [copy] = folder(office, BOB)
    assert b"pass it on" in copy
    assert queued(office) == [("bob@remote.test", "alice@elsewhere.test")]


def test_reject_refuses_in_smtp(office):
    office.admin.rules_set(ALICE, 'require "reject";\nif address :is "from" "bob@remote.test" { reject "Not from you."; }')
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(office, plain())
    assert e.value.smtp_code == 550 and b"Not from you." in e.value.smtp_error


def test_vacation_once_per_sender_per_period(office):
    office.admin.rules_set(ALICE, 'require "vacation";\nvacation :days 7 :subject "Away" "Back on Monday.";')
    send(office, plain(subject="first"), sender="bob@remote.test")
    send(office, plain(subject="second"), sender="bob@remote.test")
    send(office, plain(subject="from carol", sender="carol@remote.test"), sender="carol@remote.test")
    send(office, plain(subject="list mail", headers={"List-Id": "<news.remote.test>"}), sender="dan@remote.test")
    assert len(folder(office, ALICE)) == 4
    assert sorted(queued(office)) == [("", "bob@remote.test"), ("", "carol@remote.test")]
    reply = office.store.get_raw(office.store.list_queue()[0].blob_id)
    assert b"Subject: Away" in reply and b"Auto-Submitted: auto-replied" in reply and b"Back on Monday." in reply
    # a colleague gets the reply in their INBOX
    send(office, plain(subject="internal", sender=BOB), sender=BOB)
    assert any(b"Subject: Away" in m for m in folder(office, BOB))


def test_invalid_script_is_refused_with_line_and_reason(office):
    with pytest.raises(AdminError, match=r"line 2: unknown command 'fileinto_x'"):
        office.admin.rules_set(ALICE, "keep;\nfileinto_x;")
    assert office.admin.rules_get(ALICE) == ""


def test_fileinto_create_makes_the_folder(office):
    office.admin.rules_set(ALICE, 'require ["fileinto", "mailbox"];\n'
                                'if header :contains "subject" "invoice" { fileinto :create "Invoices"; }')
    send(office, plain(subject="Invoice 7"))
    send(office, plain(subject="Invoice 8"))
    folders = imap_folders(office, ALICE)
    assert folders["Invoices"] == [b"Subject: Invoice 7", b"Subject: Invoice 8"]
    assert folders["INBOX"] == []


@pytest.mark.in_process(reason="it reads the server's log records (caplog)")
def test_fileinto_a_missing_folder_keeps_in_inbox_and_says_so(office, caplog):
    office.admin.rules_set(ALICE, 'require "fileinto";\n\n'
                                'if header :contains "subject" "invoice" { fileinto "Invoices"; }')
    with caplog.at_level(logging.INFO, logger="kotakpos.mda"):
        send(office, plain(subject="Invoice 9"))
    folders = imap_folders(office, ALICE)
    assert "Invoices" not in folders and folders["INBOX"] == [b"Subject: Invoice 9"]
    [line] = [r.getMessage() for r in caplog.records if r.name == "kotakpos.mda" and ALICE in r.getMessage()]
    assert f'{ALICE}: INBOX (fileinto "Invoices" at line 3: no such folder, kept in INBOX)' in line


def test_mailboxexists_chooses_between_folders(office):
    office.store.create_mailbox(office.store.get_user(ALICE).id, "Projects")
    office.admin.rules_set(ALICE, 'require ["fileinto", "mailbox"];\n'
                                'if mailboxexists "Invoices" { fileinto "Invoices"; }\n'
                                'elsif mailboxexists ["Projects", "INBOX"] { fileinto "Projects"; }')
    send(office, plain(subject="first"))
    office.store.create_mailbox(office.store.get_user(ALICE).id, "Invoices")
    send(office, plain(subject="second"))
    folders = imap_folders(office, ALICE)
    assert folders["Projects"] == [b"Subject: first"] and folders["Invoices"] == [b"Subject: second"]


def test_create_and_mailboxexists_need_require_mailbox(office):
    with pytest.raises(AdminError, match='line 2: :create needs require "mailbox"'):
        office.admin.rules_set(ALICE, 'require "fileinto";\nfileinto :create "Invoices";')
    with pytest.raises(AdminError, match='line 1: \'mailboxexists\' needs require "mailbox"'):
        office.admin.rules_set(ALICE, 'if mailboxexists "Invoices" { keep; }')


# -- the account rules run before the active script (Pigeonhole's sieve_before) ----------------

def scripts(office, address: str, account_rules: str, active: str) -> None:
    """Set both scripts through the store, as the account page and ManageSieve do."""
    user_id = office.store.get_user(address).id
    office.store.set_account_rules(user_id, account_rules)
    office.store.put_sieve_script(user_id, "mine", active, max_scripts=10)
    office.store.activate_sieve_script(user_id, "mine")


def test_account_rules_and_the_active_script_both_act(office):
    scripts(office, ALICE, 'require "vacation";\nvacation :subject "Away" "Back on Monday.";',
            'require ["fileinto", "mailbox"];\nfileinto :create "Sorted";')
    send(office, plain(subject="hello"), sender="bob@remote.test")
    folders = imap_folders(office, ALICE)
    assert folders["Sorted"] == [b"Subject: hello"] and folders["INBOX"] == []
    assert queued(office) == [("", "bob@remote.test")]  # the out-of-office reply went out too


def test_activating_another_script_keeps_the_out_of_office(office):
    scripts(office, ALICE, 'require "vacation";\nvacation :subject "Away" "Back on Monday.";', "keep;")
    user_id = office.store.get_user(ALICE).id
    office.store.put_sieve_script(user_id, "other", 'require "fileinto";\nfileinto "INBOX";', max_scripts=10)
    office.store.activate_sieve_script(user_id, "other")
    send(office, plain(subject="hello"), sender="bob@remote.test")
    assert queued(office) == [("", "bob@remote.test")]
    office.store.activate_sieve_script(user_id, None)
    send(office, plain(subject="again"), sender="carol@remote.test")
    assert sorted(queued(office)) == [("", "bob@remote.test"), ("", "carol@remote.test")]
    assert len(folder(office, ALICE)) == 2


def test_stop_in_the_account_rules_ends_all(office):
    scripts(office, ALICE, 'require ["fileinto", "mailbox"];\n'
                           'if header :contains "subject" "invoice" { fileinto :create "Bills"; stop; }',
            'discard;')
    send(office, plain(subject="Invoice 3"))
    send(office, plain(subject="lunch"))
    folders = imap_folders(office, ALICE)
    assert folders["Bills"] == [b"Subject: Invoice 3"]  # the active script's discard never ran for it
    assert folders["INBOX"] == []  # ...but did for the other


def test_implicit_keep_only_when_neither_script_cancels_it(office):
    # the account rules forward with a copy (no cancel); the active script only flags: INBOX keeps it
    scripts(office, ALICE, 'require "copy";\nredirect :copy "alice@elsewhere.test";',
            'require "imap4flags";\naddflag "\\\\Flagged";')
    send(office, plain(subject="kept"))
    assert len(folder(office, ALICE)) == 1
    # forwarding without a copy cancels the implicit keep, whatever the active script does not say
    scripts(office, ALICE, 'redirect "alice@elsewhere.test";', 'require "imap4flags";\naddflag "\\\\Flagged";')
    send(office, plain(subject="forwarded"))
    assert len(folder(office, ALICE)) == 1
    assert queued(office) == [("bob@remote.test", "alice@elsewhere.test")] * 2
    # an explicit keep in the active script brings the copy back
    scripts(office, ALICE, 'redirect "alice@elsewhere.test";', "keep;")
    send(office, plain(subject="both"))
    assert len(folder(office, ALICE)) == 2


@pytest.mark.in_process(reason="it reads the server's log records (caplog)")
def test_each_message_is_logged_once_and_the_filters_add_a_line_only_for_news(office, caplog):
    office.store.create_mailbox(office.store.get_user(ALICE).id, "Bills")
    office.admin.rules_set(ALICE, 'require "fileinto";\nif header :contains "subject" "invoice" { fileinto "Bills"; }')
    with caplog.at_level(logging.INFO, logger="kotakpos"):
        send(office, plain(subject="lunch", to=ALICE))
        send(office, plain(subject="Invoice 43", to=ALICE))
    lunch, filed, invoice = [r.getMessage() for r in caplog.records if ALICE in r.getMessage()]
    assert "accepted" in lunch and f"to=<{ALICE}>" in lunch  # into INBOX: the SMTP line alone
    assert f"{ALICE}: Bills" in filed  # the filters' line says where it went instead
    assert "accepted" in invoice and f"to=<{ALICE}>" in invoice
