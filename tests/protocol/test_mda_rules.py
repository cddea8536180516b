"""Per-user Sieve rules on mail received by SMTP: fileinto (with :create), mailboxexists, redirect,
reject, vacation once per sender."""

import imaplib
import logging
import smtplib

import pytest

from appliance.admin.api import AdminAPI, AdminError
from tests.conftest import PASSWORD
from tests.mda_helpers import folder, plain, send

ALICE, BOB = "alice@example.org", "bob@example.org"


@pytest.fixture
def office(make_server):
    # remote mail waits in the queue (nothing listens on port 9), where the test can see it
    server = make_server(mta={"routes": {"remote.test": "127.0.0.1:9", "elsewhere.test": "127.0.0.1:9"}})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    server.add_user(BOB)
    api = AdminAPI(server.server)
    server.api = api
    yield server
    api.close()


def queued(server) -> list[tuple[str, str]]:
    return [(row.sender, row.recipient) for row in server.store.list_queue()]


def test_fileinto_a_folder(office):
    office.store.create_mailbox(office.store.get_user(ALICE).id, "Bills")
    office.api.rules_set(ALICE, 'require "fileinto";\nif header :contains "subject" "invoice" { fileinto "Bills"; }')
    send(office, plain(subject="Invoice 42"))
    send(office, plain(subject="lunch"))
    [bill] = folder(office, ALICE, "Bills")
    [lunch] = folder(office, ALICE)
    assert b"Invoice 42" in bill and b"lunch" in lunch


def test_redirect_to_a_colleague_and_outside(office):
    office.api.rules_set(ALICE, 'redirect "bob@example.org";\nredirect "alice@elsewhere.test";')
    send(office, plain(subject="pass it on"))
    assert folder(office, ALICE) == []
    [copy] = folder(office, BOB)
    assert b"pass it on" in copy
    assert queued(office) == [("bob@remote.test", "alice@elsewhere.test")]


def test_reject_refuses_in_smtp(office):
    office.api.rules_set(ALICE, 'require "reject";\nif address :is "from" "bob@remote.test" { reject "Not from you."; }')
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(office, plain())
    assert e.value.smtp_code == 550 and b"Not from you." in e.value.smtp_error


def test_vacation_once_per_sender_per_period(office):
    office.api.rules_set(ALICE, 'require "vacation";\nvacation :days 7 :subject "Away" "Back on Monday.";')
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
        office.api.rules_set(ALICE, "keep;\nfileinto_x;")
    assert office.api.rules_get(ALICE) == ""


def imap_folders(server, address: str) -> dict[str, list[bytes]]:
    """Each folder of ``address`` and the subjects in it, as an IMAP client sees them."""
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    client.starttls(ssl_context=server.tls_context())
    client.login(address, PASSWORD)
    seen = {}
    for line in client.list()[1]:
        name = line.decode().rsplit(' "/" ', 1)[1].strip('"')
        count = int(client.select(f'"{name}"', readonly=True)[1][0])
        subjects = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1] if count else []
        seen[name] = [part[1].strip() for part in subjects if isinstance(part, tuple)]
    client.logout()
    return seen


def test_fileinto_create_makes_the_folder(office):
    office.api.rules_set(ALICE, 'require ["fileinto", "mailbox"];\n'
                                'if header :contains "subject" "invoice" { fileinto :create "Invoices"; }')
    send(office, plain(subject="Invoice 7"))
    send(office, plain(subject="Invoice 8"))
    folders = imap_folders(office, ALICE)
    assert folders["Invoices"] == [b"Subject: Invoice 7", b"Subject: Invoice 8"]
    assert folders["INBOX"] == []


def test_fileinto_a_missing_folder_keeps_in_inbox_and_says_so(office, caplog):
    office.api.rules_set(ALICE, 'require "fileinto";\n\n'
                                'if header :contains "subject" "invoice" { fileinto "Invoices"; }')
    with caplog.at_level(logging.INFO, logger="kotakpos.mda"):
        send(office, plain(subject="Invoice 9"))
    folders = imap_folders(office, ALICE)
    assert "Invoices" not in folders and folders["INBOX"] == [b"Subject: Invoice 9"]
    [line] = [r.getMessage() for r in caplog.records if ALICE in r.getMessage()]
    assert f'{ALICE}: INBOX (fileinto "Invoices" at line 3: no such folder, kept in INBOX)' in line


def test_mailboxexists_chooses_between_folders(office):
    office.store.create_mailbox(office.store.get_user(ALICE).id, "Projects")
    office.api.rules_set(ALICE, 'require ["fileinto", "mailbox"];\n'
                                'if mailboxexists "Invoices" { fileinto "Invoices"; }\n'
                                'elsif mailboxexists ["Projects", "INBOX"] { fileinto "Projects"; }')
    send(office, plain(subject="first"))
    office.store.create_mailbox(office.store.get_user(ALICE).id, "Invoices")
    send(office, plain(subject="second"))
    folders = imap_folders(office, ALICE)
    assert folders["Projects"] == [b"Subject: first"] and folders["Invoices"] == [b"Subject: second"]


def test_create_and_mailboxexists_need_require_mailbox(office):
    with pytest.raises(AdminError, match='line 2: :create needs require "mailbox"'):
        office.api.rules_set(ALICE, 'require "fileinto";\nfileinto :create "Invoices";')
    with pytest.raises(AdminError, match='line 1: \'mailboxexists\' needs require "mailbox"'):
        office.api.rules_set(ALICE, 'if mailboxexists "Invoices" { keep; }')
