"""Out of office, forwarding and filters on the account page, in a real browser (Debian's
chromium driven by Playwright), each checked end to end: mail sent over SMTP by colleagues
and read back over IMAP, as people would notice. Screenshots at phone and desktop width go
to ``tests/artifacts/account/`` like the other account-page flows."""

from __future__ import annotations

import imaplib
import re
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.conftest import PASSWORD
from tests.mda_helpers import plain, send
from tests.protocol.managesieve_wire import SieveWire, literal
from tests.web.test_account_browser import (ALICE, CHROMIUM, DESKTOP, PHONE, browser, notice, open_page,  # noqa: F401
                                            screenshot, sign_in)
from appliance.managesieve import replies

BOB, CAROL, DAN = "bob@example.org", "carol@example.org", "dan@example.org"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture
def office(make_server):
    srv = make_server()
    for address in (ALICE, BOB, CAROL, DAN):
        srv.add_user(address)
    return srv


def mail(srv, sender: str, subject: str, to: str = ALICE, headers: dict | None = None) -> None:
    """``sender`` sends a message with their mail program: SMTP submission, signed in."""
    send(srv, plain(subject=subject, sender=sender, to=to, headers=headers), to=to, sender=sender, port="submission",
         login=(sender, PASSWORD))


def mailbox(srv, address: str, name: str = "INBOX") -> list[tuple[str, set[str]]] | None:
    """(subject, flags but \\Recent) of each message in a folder as an IMAP client sees it;
    None when the folder does not exist."""
    with imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=srv.tls_context(), timeout=20) as m:
        m.login(address, PASSWORD)
        status, data = m.select(f'"{name}"', readonly=True)
        if status != "OK":
            return None
        found = []
        if int(data[0]):
            for item in m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]:
                if isinstance(item, tuple):
                    flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()
                    found.append((item[1].decode().strip().removeprefix("Subject: "), set(flags) - {"\\Recent"}))
        m.logout()
        return found


def subjects(srv, address: str, name: str = "INBOX") -> list[str]:
    return [subject for subject, _ in mailbox(srv, address, name) or []]


def set_out_of_office(page, message: str, subject: str = "", start: str = "", end: str = "", on: bool = True) -> None:
    form = page.locator("#out-of-office form")
    form.locator("input[name=on]").set_checked(on)
    form.locator("input[name=start]").fill(start)
    form.locator("input[name=end]").fill(end)
    form.locator("input[name=subject]").fill(subject)
    form.locator("textarea[name=message]").fill(message)
    form.locator("button").click()


def set_forwarding(page, addresses: str, keep: bool) -> None:
    form = page.locator("#forwarding form")
    form.locator("textarea[name=addresses]").fill(addresses)
    form.locator("input[name=keep]").set_checked(keep)
    form.locator("button").click()


def add_filter(page, field: str, value: str, action: str, target: str = "", header: str = "") -> None:
    form = page.locator("#filters form.rule.add")
    form.locator("select[name=field]").select_option(field)
    form.locator("input[name=header]").fill(header)
    form.locator("input[name=value]").fill(value)
    form.locator("select[name=action]").select_option(action)
    form.locator("input[name=target]").fill(target)
    form.locator("button").click()


# -- out of office ----------------------------------------------------------------------------

def test_out_of_office_answers_each_sender_once_and_outlives_activating_a_script(office, open_page, caplog):
    caplog.set_level("INFO", logger="kotakpos")
    page = open_page(office, PHONE)
    sign_in(page)
    assert page.inner_text("#out-of-office .state") == "Automatic replies are off."
    today = date.today()
    message = "I am on leave until Monday.\nRina in sales can help."
    set_out_of_office(page, message, "Away until Monday", today.isoformat(), (today + timedelta(days=7)).isoformat())
    assert notice(page) == "Your out-of-office reply was saved."
    # The form shows what is saved.
    form = page.locator("#out-of-office form")
    assert form.locator("input[name=on]").is_checked()
    assert form.locator("input[name=start]").input_value() == today.isoformat()
    assert form.locator("input[name=end]").input_value() == (today + timedelta(days=7)).isoformat()
    assert form.locator("input[name=subject]").input_value() == "Away until Monday"
    assert form.locator("textarea[name=message]").input_value() == message
    assert page.inner_text("#out-of-office .state") == "Automatic replies are on."
    screenshot(page, "out-of-office-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # A mail program activates its own script over ManageSieve: the out-of-office stays on,
    # and the script runs too.
    sieve = SieveWire.logged_in(office, ALICE, PASSWORD)
    script = ('require ["fileinto", "mailbox"];\r\n'
              'if header :contains "subject" "meeting" { fileinto :create "Meetings"; }\r\n')
    sieve.transact(b'PUTSCRIPT "thunderbird" ' + literal(script), replies.OK_STORED)
    sieve.transact('SETACTIVE "thunderbird"', replies.OK_ACTIVATED)
    sieve.transact("LOGOUT", replies.OK_LOGOUT)
    page.reload()
    assert "“thunderbird” runs after these rules" in page.inner_text("#active-script")

    mail(office, BOB, "Meeting on Thursday?")
    assert subjects(office, BOB) == ["Away until Monday"]
    mail(office, BOB, "Meeting on Thursday? (again)")
    assert subjects(office, BOB) == ["Away until Monday"]          # once per sender
    mail(office, CAROL, "List digest", headers={"List-Id": "<staff.example.org>"})
    mail(office, DAN, "Newsletter", headers={"Precedence": "bulk"})
    assert subjects(office, CAROL) == [] and subjects(office, DAN) == []   # never to lists or bulk mail
    assert subjects(office, ALICE, "Meetings") == ["Meeting on Thursday?", "Meeting on Thursday? (again)"]
    assert subjects(office, ALICE) == ["List digest", "Newsletter"]
    # Logged, without the message itself.
    assert f"{ALICE} turned the out-of-office on from {today.isoformat()}" in caplog.text
    assert "on leave" not in caplog.text

    page.set_viewport_size(DESKTOP)
    screenshot(page, "out-of-office-desktop")


def test_out_of_office_after_its_last_day_sends_nothing_and_errors_say_what_to_fix(office, open_page):
    page = open_page(office)
    sign_in(page)
    today = date.today()
    set_out_of_office(page, "Away.", start=(today + timedelta(days=5)).isoformat(), end=today.isoformat())
    assert notice(page) == "The last day is before the first day."
    set_out_of_office(page, "   ")
    assert notice(page) == "Write the message of your automatic reply."
    assert page.inner_text("#out-of-office .state") == "Automatic replies are off."   # nothing was saved

    set_out_of_office(page, "Away last week.", start=(today - timedelta(days=10)).isoformat(),
                      end=(today - timedelta(days=3)).isoformat())
    assert notice(page) == "Your out-of-office reply was saved."
    mail(office, BOB, "Are you back?")
    assert subjects(office, ALICE) == ["Are you back?"] and subjects(office, BOB) == []
    # Turned off, the text stays for next time, and no reply goes out.
    set_out_of_office(page, "Away last week.", on=False)
    assert page.locator("#out-of-office textarea[name=message]").input_value() == "Away last week."
    assert not page.locator("#out-of-office input[name=on]").is_checked()
    assert office.store.get_account_rules(office.store.get_user(ALICE).id) == ""


# -- forwarding -------------------------------------------------------------------------------

def test_forwarding_to_a_colleague_with_and_without_a_copy(office, open_page, caplog):
    caplog.set_level("INFO", logger="kotakpos")
    page = open_page(office)
    sign_in(page)
    for addresses, refusal in [("bob at example.org", "“bob” is not a mail address."),
                               ("Alice@example.org", "“Alice@example.org” is your own address"),
                               ("nobody@example.org", "There is no mailbox “nobody@example.org” on this server.")]:
        set_forwarding(page, addresses, keep=True)
        assert refusal in notice(page)
    assert page.inner_text("#forwarding .state") == "Forwarding is off."

    set_forwarding(page, BOB, keep=True)
    assert notice(page) == "Forwarding was saved."
    assert page.inner_text("#forwarding .state") == f"Your mail is forwarded to {BOB}. A copy stays here."
    assert page.locator("#forwarding textarea[name=addresses]").input_value() == BOB
    mail(office, CAROL, "Kept and forwarded")
    assert subjects(office, ALICE) == ["Kept and forwarded"] and subjects(office, BOB) == ["Kept and forwarded"]

    set_forwarding(page, BOB, keep=False)
    assert page.inner_text("#forwarding .state") == f"Your mail is forwarded to {BOB}. No copy stays here."
    assert not page.locator("#forwarding input[name=keep]").is_checked()
    mail(office, CAROL, "Only forwarded")
    assert subjects(office, ALICE) == ["Kept and forwarded"]
    assert subjects(office, BOB) == ["Kept and forwarded", "Only forwarded"]
    screenshot(page, "forwarding-desktop")

    # A forged form (no CSRF token) changes nothing.
    forged = page.request.post(f"https://127.0.0.1:{office.server.web.port('https')}/account/forwarding",
                               data=urlencode({"addresses": DAN, "keep": "on"}), max_redirects=0,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert forged.status == 403
    page.reload()
    assert page.inner_text("#forwarding .state") == f"Your mail is forwarded to {BOB}. No copy stays here."

    set_forwarding(page, "", keep=True)
    assert page.inner_text("#forwarding .state") == "Forwarding is off."
    mail(office, CAROL, "Back home")
    assert subjects(office, ALICE) == ["Kept and forwarded", "Back home"]
    assert f"{ALICE} set forwarding to {BOB} (without a copy)" in caplog.text and "turned forwarding off" in caplog.text


# -- filters ------------------------------------------------------------------------------------

def test_filters_move_mark_read_and_discard(office, open_page):
    page = open_page(office)
    sign_in(page)
    assert page.inner_text("#filters .state") == "No filters yet."
    add_filter(page, "subject", "", "move", "Invoices")
    # The browser asks for the text first; the server's check is there for other clients.
    assert page.locator("#filters .rules").count() == 0
    add_filter(page, "header", "x", "read", header="List Id")
    assert notice(page) == "“List Id” is not a header name (like List-Id)."
    add_filter(page, "subject", "invoice", "move", "Invoices")
    assert notice(page) == "The filter was added."
    add_filter(page, "from", "carol", "read")
    add_filter(page, "subject", "casino", "discard")
    add_filter(page, "header", "weekly", "move", "Newsletters", header="List-Id")
    rules = page.locator("#filters .rules li span").all_inner_texts()
    assert [" ".join(r.split()) for r in rules] == [
        "If Subject contains “invoice”, move to folder Invoices", "If From contains “carol”, mark as read",
        "If Subject contains “casino”, delete it", "If List-Id contains “weekly”, move to folder Newsletters"]
    assert mailbox(office, ALICE, "Invoices") is None   # the folder comes with the first invoice

    mail(office, BOB, "Invoice 2026-117")
    mail(office, CAROL, "Lunch today?")
    mail(office, DAN, "Big casino bonus")
    mail(office, DAN, "This week", headers={"List-Id": "weekly news <weekly.example.org>"})
    assert mailbox(office, ALICE, "Invoices") == [("Invoice 2026-117", set())]
    assert mailbox(office, ALICE, "Newsletters") == [("This week", set())]
    assert mailbox(office, ALICE) == [("Lunch today?", {"\\Seen"})]   # marked read; the casino mail is gone
    screenshot(page, "filters-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "filters-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.locator("#filters .rules li").nth(2).locator("button.danger").click()   # remove the discard rule
    assert notice(page) == "The filter was removed."
    assert page.locator("#filters .rules li").count() == 3
    mail(office, DAN, "Big casino bonus")
    assert [s for s, _ in mailbox(office, ALICE)] == ["Lunch today?", "Big casino bonus"]


def test_the_panels_speak_indonesian(office, open_page):
    page = open_page(office, PHONE, locale="id-ID")
    sign_in(page)
    assert page.inner_text("#out-of-office h2") == "Di luar kantor"
    assert page.inner_text("#forwarding h2") == "Penerusan" and page.inner_text("#filters h2") == "Filter"
    set_forwarding(page, "nobody@example.org", keep=True)
    assert notice(page) == "Tidak ada kotak surat “nobody@example.org” di server ini."
    add_filter(page, "subject", "faktur", "move", "Faktur")
    [rule] = page.locator("#filters .rules li span").all_inner_texts()
    assert " ".join(rule.split()) == "Jika Subjek berisi “faktur”, pindahkan ke folder Faktur"
    screenshot(page, "rules-id-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
