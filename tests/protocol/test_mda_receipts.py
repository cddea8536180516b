"""Return receipts end to end: a delivery DSN for NOTIFY=SUCCESS, automatic read receipts, the ledger."""

import imaplib
import poplib

import pytest
from click.testing import CliRunner

from appliance.cli import main
from tests.conftest import PASSWORD
from tests.mda_helpers import folder, plain, send, wait_for

ALICE, BOB = "alice@example.org", "bob@example.org"


@pytest.fixture
def office(make_server):
    # remote mail waits in the queue (nothing listens on port 9), where the test can see it
    server = make_server(mta={"routes": {"remote.test": "127.0.0.1:9"}})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    server.add_user(BOB)
    return server


def read_all(server, address: str) -> None:
    """Read every INBOX message by IMAP, as a mail client would (BODY[] sets \\Seen)."""
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    client.starttls(ssl_context=server.tls_context())
    client.login(address, PASSWORD)
    client.select("INBOX")
    assert client.fetch("1:*", "(BODY[])")[0] == "OK"
    client.logout()


def test_notify_success_yields_a_delivery_dsn_that_updates_the_ledger(office):
    send(office, plain(sender=ALICE, to=BOB, subject="contract"), to=BOB, sender=ALICE, port="submission",
         login=(ALICE, PASSWORD), rcpt_options=["NOTIFY=SUCCESS"], mail_options=["ENVID=contract-1"])
    [delivered] = folder(office, BOB)
    assert b"Subject: contract" in delivered
    [dsn] = folder(office, ALICE)
    assert b"report-type=delivery-status" in dsn and b"Action: delivered" in dsn
    assert b"Original-Envelope-Id: contract-1" in dsn
    ledger = wait_for(lambda: [r for r in office.admin.receipts(ALICE)["sent"] if r["delivery"] == "delivered"],
                      what="the ledger to record the DSN")
    assert ledger[0]["recipient"] == BOB and ledger[0]["subject"] == "contract"
    out = CliRunner().invoke(main, ["receipts", ALICE, "--data", str(office.data_dir)])
    assert out.exit_code == 0 and "delivery: delivered" in out.output


def test_read_receipt_sent_once_on_first_read_under_auto_policy(office):
    office.admin.receipts_policy(ALICE, "auto")
    asks = {"Disposition-Notification-To": "carol@remote.test"}
    send(office, plain(sender="carol@remote.test", subject="did you read it", headers=asks), sender="carol@remote.test")
    assert office.store.list_queue() == []
    read_all(office, ALICE)
    wait_for(lambda: office.store.list_queue(), what="the MDN to be queued")
    read_all(office, ALICE)  # reading again, flags changing again: still one MDN
    office.store.store_flags(office.store.get_mailbox(office.store.get_user(ALICE).id, "INBOX").id, [1], "remove",
                             {"\\Seen"})
    read_all(office, ALICE)
    wait_for(lambda: office.stats().get("mda.mdn_sent") == 1, what="one MDN")
    [row] = office.store.list_queue()
    assert (row.sender, row.recipient) == ("", "carol@remote.test")
    mdn = office.store.get_raw(row.blob_id)
    assert b"report-type=disposition-notification" in mdn and b"MDN-sent-automatically; displayed" in mdn
    [request] = office.admin.receipts(ALICE)["requested"]
    assert request["state"] == "sent" and request["from"] == "carol@remote.test"


def test_no_read_receipt_under_client_policy_or_for_another_address(office):
    send(office, plain(sender="carol@remote.test", headers={"Disposition-Notification-To": "carol@remote.test"}),
         sender="carol@remote.test")
    office.admin.receipts_policy(BOB, "auto")
    send(office, plain(sender="dan@remote.test", to=BOB, headers={"Disposition-Notification-To": "x@remote.test"}),
         to=BOB, sender="dan@remote.test")
    read_all(office, ALICE)
    read_all(office, BOB)
    wait_for(lambda: office.admin.receipts(BOB)["requested"][0]["state"] == "refused", what="refusal")
    assert office.admin.receipts(ALICE)["requested"][0]["state"] == "pending"  # the client decides
    assert office.store.list_queue() == []


def test_a_read_receipt_coming_back_updates_the_ledger(office):
    office.admin.receipts_policy(BOB, "auto")
    send(office, plain(sender=ALICE, to=BOB, subject="minutes", headers={"Disposition-Notification-To": ALICE}),
         to=BOB, sender=ALICE, port="submission", login=(ALICE, PASSWORD))
    [row] = office.admin.receipts(ALICE)["sent"]
    assert (row["recipient"], row["display"], row["delivery"]) == (BOB, "requested", "")
    read_all(office, BOB)
    wait_for(lambda: office.admin.receipts(ALICE)["sent"][0]["display"] == "displayed", what="the MDN in the ledger")
    [mdn] = folder(office, ALICE)
    assert b"Subject: Read: minutes" in mdn


def test_a_message_without_a_body_that_asks_for_a_read_receipt_is_in_the_ledger(office):
    # its Message-ID and Subject read as every reader reads them (mime.message_id, mime.subject)
    raw = (f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: =?utf-8?q?R=C3=A4tsel?=\r\nMessage-ID: <no-body@example.org>\r\n"
           f"Disposition-Notification-To: {ALICE}").encode()
    send(office, raw, to=BOB, sender=ALICE, port="submission", login=(ALICE, PASSWORD))
    [row] = office.admin.receipts(ALICE)["sent"]
    assert (row["recipient"], row["display"], row["subject"], row["message_id"]) == \
        (BOB, "requested", "Rätsel", "<no-body@example.org>")


def test_a_bounce_from_the_relay_queue_updates_the_ledger(office):
    send(office, plain(sender=ALICE, to="carol@remote.test", subject="offer"), to="carol@remote.test", sender=ALICE,
         port="submission", login=(ALICE, PASSWORD), rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    [row] = office.admin.receipts(ALICE)["sent"]
    assert (row["recipient"], row["delivery"]) == ("carol@remote.test", "requested")
    [entry] = office.store.list_queue()
    # the MTA writes a failure DSN (retried while the queue runner holds the entry for an attempt)
    wait_for(lambda: office.admin.queue_bounce([entry.id], "mail.example.org") == 1, what="the bounce")
    wait_for(lambda: office.admin.receipts(ALICE)["sent"][0]["delivery"] == "failed", what="the bounce in the ledger")


def test_read_receipt_on_first_pop3_retr(office):
    office.admin.receipts_policy(ALICE, "auto")
    send(office, plain(sender="carol@remote.test", headers={"Disposition-Notification-To": "carol@remote.test"}),
         sender="carol@remote.test")
    client = poplib.POP3("127.0.0.1", office.port("pop3"))
    client.stls(context=office.tls_context())
    client.user(ALICE)
    client.pass_(PASSWORD)
    client.retr(1)
    client.quit()  # POP3 marks retrieved mail \Seen when the session ends
    wait_for(lambda: office.stats().get("mda.mdn_sent") == 1, what="the MDN after RETR")
    [row] = office.store.list_queue()
    assert row.recipient == "carol@remote.test"
