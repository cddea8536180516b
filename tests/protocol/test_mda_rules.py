"""Per-user Sieve rules on mail received by SMTP: fileinto, redirect, reject, vacation once per sender."""

import smtplib

import pytest

from appliance.admin.api import AdminAPI, AdminError
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
