"""Out of office, forwarding and filters on the account page, in a real browser (Debian's
chromium driven by Playwright), each checked end to end: mail sent over SMTP by colleagues
and read back over IMAP, as people would notice. Screenshots at phone and desktop width go
to ``tests/artifacts/account/`` like the other account-page flows."""

from __future__ import annotations

import http.client
import imaplib
import re
import threading
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


def set_out_of_office(page, message: str, subject: str = "", start: str = "", end: str = "", on: bool = True,
                      days: str | None = None) -> None:
    form = page.locator("#out-of-office form")
    if days is not None:
        form.locator("input[name=days]").fill(days)
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
    # The interval between two replies to one sender starts as the server's.
    form = page.locator("#out-of-office form")
    assert form.locator("input[name=days]").input_value() == str(office.config.mda.vacation_days)
    today = date.today()
    message = "I am on leave until Monday.\nRina in sales can help."
    set_out_of_office(page, message, "Away until Monday", today.isoformat(), (today + timedelta(days=7)).isoformat(),
                      days="3")
    assert notice(page) == "Your out-of-office reply was saved."
    # The form shows what is saved.
    assert form.locator("input[name=days]").input_value() == "3"
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
    assert "once per sender every 3 days" in caplog.text
    # The person's interval is what the MDA reads (RFC 5230 :days) instead of the server's.
    assert "vacation :days 3 " in office.store.get_account_rules(office.store.get_user(ALICE).id)
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
    add_filter(page, "from", "bos", "read")
    assert rule_texts(page) == ["Jika Subjek berisi “faktur”, pindahkan ke folder Faktur",
                                "Jika Dari berisi “bos”, tandai sudah dibaca"]
    page.locator("#filters .rules li").nth(1).get_by_role("button", name="Naikkan").click()
    assert notice(page) == "Filter dipindahkan."
    edit_filter(page, 0, value="bos besar")
    assert notice(page) == "Filter diubah."
    assert rule_texts(page)[0] == "Jika Dari berisi “bos besar”, tandai sudah dibaca"
    assert page.inner_text("#filters .rules li >> nth=0 >> summary") == "Ubah"
    assert "Jumlah hari" in page.inner_text("#out-of-office form")
    screenshot(page, "rules-id-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def edit_filter(page, index: int, **fields) -> None:
    """Open filter ``index``'s edit form (it comes filled with the rule) and change ``fields``."""
    rule = page.locator("#filters .rules li").nth(index)
    rule.locator("summary").click()
    form = rule.locator("form.rule")
    for name, value in fields.items():
        if name in ("field", "action"):
            form.locator(f"select[name={name}]").select_option(value)
        else:
            form.locator(f"input[name={name}]").fill(value)
    form.locator("button").click()


def rule_texts(page) -> list[str]:
    return [" ".join(r.split()) for r in page.locator("#filters .rules li > span").all_inner_texts()]


def test_a_filter_is_edited_and_moved_and_its_order_decides(office, open_page, caplog):
    caplog.set_level("INFO", logger="kotakpos")
    page = open_page(office, PHONE)
    sign_in(page)
    add_filter(page, "subject", "invoice", "move", "Invoices")
    mail(office, BOB, "Invoice 1")
    assert subjects(office, ALICE, "Invoices") == ["Invoice 1"]

    # The edit form comes filled with the rule; a new folder takes the next invoice.
    rule = page.locator("#filters .rules li").nth(0)
    rule.locator("summary").click()
    form = rule.locator("form.rule")
    assert [form.locator(f"select[name={n}]").input_value() for n in ("field", "action")] == ["subject", "move"]
    assert [form.locator(f"input[name={n}]").input_value() for n in ("value", "target")] == ["invoice", "Invoices"]
    screenshot(page, "filters-edit-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    form.locator("input[name=target]").fill("Bills")
    form.locator("button").click()
    assert notice(page) == "The filter was changed."
    assert rule_texts(page) == ["If Subject contains “invoice”, move to folder Bills"]
    mail(office, BOB, "Invoice 2")
    assert subjects(office, ALICE, "Bills") == ["Invoice 2"]
    assert subjects(office, ALICE, "Invoices") == ["Invoice 1"]
    assert f"{ALICE} changed filter 1: subject contains 'invoice' then move Bills" in caplog.text

    # Order matters: a discard above the move to Boss ends things before it; below, it comes too late.
    edit_filter(page, 0, action="discard", target="")
    add_filter(page, "from", "dan", "move", "Boss")
    assert rule_texts(page) == ["If Subject contains “invoice”, delete it", "If From contains “dan”, move to folder Boss"]
    mail(office, DAN, "Invoice 3")
    mail(office, DAN, "Lunch?")
    assert subjects(office, ALICE, "Boss") == ["Lunch?"]
    first, second = page.locator("#filters .rules li").nth(0), page.locator("#filters .rules li").nth(1)
    assert first.get_by_role("button", name="Move up").count() == 0      # nowhere to go
    assert second.get_by_role("button", name="Move down").count() == 0
    second.get_by_role("button", name="Move up").click()
    assert notice(page) == "The filter was moved."
    assert rule_texts(page) == ["If From contains “dan”, move to folder Boss", "If Subject contains “invoice”, delete it"]
    mail(office, DAN, "Invoice 4")
    mail(office, BOB, "Invoice 5")
    assert subjects(office, ALICE, "Boss") == ["Lunch?", "Invoice 4"]
    assert subjects(office, ALICE) == []                                 # Bob's invoice is still discarded
    screenshot(page, "filters-moved-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # A forged move (no CSRF token) changes nothing.
    forged = page.request.post(f"https://127.0.0.1:{office.server.web.port('https')}/account/filters/move",
                               data=urlencode({"index": "1", "key": "", "direction": "up"}), max_redirects=0,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert forged.status == 403
    page.reload()
    assert rule_texts(page)[0] == "If From contains “dan”, move to folder Boss"
    page.set_viewport_size(DESKTOP)
    screenshot(page, "filters-moved-desktop")


def post_at_once(srv, posts: list[tuple[object, str, dict]]) -> list[int]:
    """POST each (page, path, fields) with that page's session and CSRF token, all at the same
    moment, as two tabs or devices saving together would; the HTTP statuses."""
    port = srv.server.web.port("https")
    signed = {id(page): ("; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies()),
                         page.locator("input[name=csrf]").first.input_value()) for page, _, _ in posts}
    start = threading.Barrier(len(posts))
    statuses = [0] * len(posts)

    def post(i: int, page, path: str, fields: dict) -> None:
        cookie, csrf = signed[id(page)]
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=srv.tls_context(), timeout=30)
        start.wait()
        conn.request("POST", path, urlencode({"csrf": csrf, **fields}),
                     {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        statuses[i] = conn.getresponse().status
        conn.close()

    threads = [threading.Thread(target=post, args=(i, *p)) for i, p in enumerate(posts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_two_tabs_saving_different_panels_keep_both_changes(office, open_page):
    laptop, phone = open_page(office), open_page(office, PHONE)
    sign_in(laptop)
    sign_in(phone)
    # Both pages are loaded before either saves: the phone's out-of-office keeps the laptop's filter.
    add_filter(laptop, "subject", "invoice", "move", "Invoices")
    set_out_of_office(phone, "Away this week.", days="2")
    assert notice(phone) == "Your out-of-office reply was saved."
    assert rule_texts(phone) == ["If Subject contains “invoice”, move to folder Invoices"]
    # The laptop changes the filter; the phone's Remove, from before, refuses rather than guess.
    edit_filter(laptop, 0, target="Bills")
    phone.locator("#filters .rules li").nth(0).locator("button.danger").click()
    assert "changed elsewhere" in notice(phone)
    assert rule_texts(phone) == ["If Subject contains “invoice”, move to folder Bills"]
    assert phone.inner_text("#out-of-office .state") == "Automatic replies are on."

    # Saved at the very same moment from both sessions: nothing is lost.
    reports = [(laptop, "/account/filters", {"field": "subject", "header": "", "value": f"report {i}",
                                              "action": "move", "target": "Reports"}) for i in range(8)]
    away = [(phone, "/account/out-of-office", {"on": "on", "message": "Away this week.", "days": "2"}),
            (phone, "/account/forwarding", {"addresses": CAROL, "keep": "on"})] * 4
    assert post_at_once(office, reports + away) == [303] * len(reports + away)
    laptop.reload()
    assert len(rule_texts(laptop)) == 9
    assert sorted(rule_texts(laptop)[1:]) == sorted(f"If Subject contains “report {i}”, move to folder Reports"
                                                    for i in range(8))
    assert laptop.inner_text("#out-of-office .state") == "Automatic replies are on."
    assert laptop.locator("#out-of-office input[name=days]").input_value() == "2"
    assert laptop.inner_text("#forwarding .state") == f"Your mail is forwarded to {CAROL}. A copy stays here."

    mail(office, BOB, "Invoice 9")
    assert subjects(office, ALICE, "Bills") == ["Invoice 9"]
    assert subjects(office, CAROL) == ["Invoice 9"] and len(subjects(office, BOB)) == 1
