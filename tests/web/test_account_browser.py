"""The account page in a real browser: Debian's chromium, headless, driven by Playwright.

Each flow runs end to end against a live server and checks what the user would notice,
in the page and over IMAP. Screenshots at phone and desktop width are written to
``tests/artifacts/account/`` (ignored by git; KOTAKPOS_ARTIFACTS names another folder).
One browser serves the whole module; each test has its own server and browser context.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from appliance.auth import totp
from tests.conftest import PASSWORD

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ALICE = "alice@example.org"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
ARTIFACTS = Path(os.environ.get("KOTAKPOS_ARTIFACTS", Path(__file__).parents[1] / "artifacts")) / "account"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def office(make_server):
    srv = make_server()
    srv.add_user(ALICE)
    return srv


@pytest.fixture
def open_page(browser):
    contexts = []

    def open_(srv, viewport=DESKTOP, locale="en-US"):
        context = browser.new_context(ignore_https_errors=True, viewport=viewport, locale=locale)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"https://127.0.0.1:{srv.server.web.port('https')}/account")
        return page

    yield open_
    for context in contexts:
        context.close()


def sign_in(page, password=PASSWORD, address=ALICE):
    page.fill("input[name=address]", address)
    page.fill("input[name=password]", password)
    page.click("form[action='/account/sign-in'] button")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def imap_login(srv, password: str, address: str = ALICE) -> bool:
    with imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=srv.tls_context(), timeout=20) as m:
        try:
            m.login(address, password)
        except imaplib.IMAP4.error:
            return False
        m.logout()
        return True


def notice(page) -> str:
    return page.inner_text(".notice")


# -- the flows ------------------------------------------------------------------------------

def test_sign_in_shows_usage_with_each_folder_and_screenshots_at_both_widths(office, open_page):
    user = office.store.get_user(ALICE)
    message = b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\n" + b"x" * 3000 + b"\r\n"
    with imaplib.IMAP4_SSL("127.0.0.1", office.port("imaps"), ssl_context=office.tls_context()) as m:
        m.login(ALICE, PASSWORD)
        m.append("Archive", None, None, message)
        m.logout()
    page = open_page(office, PHONE)
    screenshot(page, "sign-in-phone")
    sign_in(page)
    assert page.inner_text("#address") == ALICE
    rows = {cells[0]: (cells[1], cells[2])
            for cells in (row.locator("td").all_inner_texts() for row in page.locator("#usage tbody tr").all())}
    assert rows["Archive"] == ("1", "3.0 KB") and rows["INBOX"] == ("0", "0 B")
    assert "Used 3.0 KB (no limit)" in page.inner_text("#usage")
    assert office.store.usage(user.id) > 3000
    screenshot(page, "account-phone")
    # The page fits a phone: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)
    screenshot(page, "account-desktop")
    # The set-up links and the phone's QR code point at this server.
    setup = page.inner_html("#setup")
    assert "mobileconfig?email=alice%40example.org" in setup and "<svg" in setup


def test_change_the_password_then_imap_takes_only_the_new_one(office, open_page):
    page = open_page(office)
    sign_in(page)
    new = "kopi tubruk di pagi hari"
    for old, first, second, refusal in [
        ("not my password", new, new, "The current password is not right."),
        (PASSWORD, new, new + "x", "The two new passwords differ."),
        (PASSWORD, "short", "short", "too short"),
        (PASSWORD, "Alice@Example.org", "Alice@Example.org", "must not be your mail address"),
        (PASSWORD, "1q2w3e4r5t", "1q2w3e4r5t", "most common passwords"),
    ]:
        page.fill("input[name=old]", old)
        page.fill("input[name=new]", first)
        page.fill("input[name=repeat]", second)
        page.click("#password button")
        assert refusal in notice(page)
    assert imap_login(office, PASSWORD)
    page.fill("input[name=old]", PASSWORD)
    page.fill("input[name=new]", new)
    page.fill("input[name=repeat]", new)
    page.click("#password button")
    assert notice(page) == "Your password was changed."
    assert imap_login(office, new) and not imap_login(office, PASSWORD)


def test_an_app_password_logs_in_over_imap_until_it_is_revoked(office, open_page, caplog):
    caplog.set_level("INFO", logger="kotakpos")
    page = open_page(office)
    sign_in(page)
    page.fill("#app-passwords input[name=name]", "Rina's phone")
    page.click("#app-passwords form[action='/account/app-passwords'] button")
    secret = page.inner_text("#new-app-password")
    assert re.fullmatch(r"([a-z]{4} ){4}[a-z]{4}", secret)
    assert "Rina's phone" in notice(page)
    page.reload()
    assert page.query_selector("#new-app-password") is None   # shown once
    assert imap_login(office, secret) and imap_login(office, secret.replace(" ", ""))
    page.reload()
    row = page.inner_text("#app-passwords tbody tr")
    assert "Rina's phone" in row and "127.0.0.1" in row and "never" not in row
    page.click("#app-passwords tbody tr button")
    assert notice(page) == "The app password was revoked."
    assert not imap_login(office, secret)
    assert imap_login(office, PASSWORD)
    # Every change is logged, never with the secret.
    assert "alice@example.org created app password" in caplog.text and "revoked app password" in caplog.text
    assert secret not in caplog.text and secret.replace(" ", "") not in caplog.text


def test_require_app_passwords_leaves_the_main_password_to_the_page(make_server, open_page):
    srv = make_server(auth={"require_app_passwords": True})
    srv.add_user(ALICE)
    page = open_page(srv)
    sign_in(page)
    assert "your main password only opens this page" in page.inner_text("#app-passwords")
    page.fill("#app-passwords input[name=name]", "laptop")
    page.click("#app-passwords form[action='/account/app-passwords'] button")
    secret = page.inner_text("#new-app-password")
    assert not imap_login(srv, PASSWORD) and imap_login(srv, secret)


def test_two_step_sign_in_with_a_computed_code_and_a_recovery_code_once(office, open_page):
    page = open_page(office)
    sign_in(page)
    page.click("#totp button")
    key = page.inner_text("#totp-key")
    assert "<svg" in page.inner_html("#totp .qr")
    page.fill("#totp input[name=code]", "000000" if totp.code_at(key, totp.current_step()) != "000000" else "111111")
    page.click("#totp button")
    assert notice(page) == "That code is not right."
    page.fill("#totp input[name=code]", totp.code_at(key, totp.current_step()))
    page.click("#totp button")
    codes = [li.inner_text() for li in page.query_selector_all("#recovery-codes li")]
    assert len(codes) == 10 and "Recovery codes left: 10" in page.inner_text("#totp")
    page.click("#sign-out")

    sign_in(page)
    assert page.query_selector("#address") is None and "Two-step sign-in" in page.inner_text("main")
    # The confirming code used the current step, and each is accepted once: the next step's
    # code is within the window.
    page.fill("input[name=code]", totp.code_at(key, totp.current_step() + 1))
    page.click("main button")
    assert page.inner_text("#address") == ALICE
    page.click("#sign-out")

    for expected in (True, False):   # a recovery code works once
        sign_in(page)
        page.fill("input[name=code]", codes[0])
        page.click("main button")
        assert (page.query_selector("#address") is not None) == expected
        if expected:
            assert "Recovery codes left: 9" in page.inner_text("#totp")
            page.click("#sign-out")
        else:
            assert notice(page) == "That code is not right."


def test_the_language_follows_the_browser_and_the_switch_is_remembered(office, open_page):
    page = open_page(office, locale="id-ID")
    assert page.inner_text("h1") == "Akun surel Anda" and page.get_attribute("html", "lang") == "id"
    sign_in(page)
    assert "Kata sandi aplikasi" in page.inner_text("#app-passwords h2")
    screenshot(page, "account-id-desktop")
    page.click("#language")
    assert page.inner_text("h1") == "Your mail account"
    page.reload()
    assert page.inner_text("#app-passwords h2") == "App passwords"


# -- attacks ----------------------------------------------------------------------------------

def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(office, open_page):
    page = open_page(office)
    sign_in(page)
    base = f"https://127.0.0.1:{office.server.web.port('https')}"
    before = office.store.app_passwords(office.store.get_user(ALICE).id)
    for form in ({"name": "evil"}, {"name": "evil", "csrf": "forged"}):
        response = page.request.post(f"{base}/account/app-passwords", data=urlencode(form),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"},
                                     max_redirects=0)
        assert response.status == 403 and "The form expired" in response.text()
    assert office.store.app_passwords(office.store.get_user(ALICE).id) == before
    page.reload()
    assert page.inner_text("#address") == ALICE   # the real session is untouched


def test_a_session_cookie_replayed_after_sign_out_is_refused(office, open_page, browser):
    page = open_page(office)
    sign_in(page)
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "kotakpos_session")
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
    csrf = page.get_attribute("input[name=csrf]", "value")
    page.click("#sign-out")
    thief = browser.new_context(ignore_https_errors=True)
    try:
        thief.add_cookies(cookies)
        stolen = thief.new_page()
        stolen.goto(f"https://127.0.0.1:{office.server.web.port('https')}/account")
        assert stolen.query_selector("#address") is None and stolen.query_selector("input[name=password]")
        response = thief.request.post(f"https://127.0.0.1:{office.server.web.port('https')}/account/app-passwords",
                                      data=urlencode({"name": "evil", "csrf": csrf}),
                                      headers={"Content-Type": "application/x-www-form-urlencoded"}, max_redirects=0)
        assert response.status == 403
    finally:
        thief.close()


def test_thirty_wrong_passwords_on_the_page_are_throttled_then_blocked_like_imap(make_server, open_page, monkeypatch):
    srv = make_server(auth={"block_after": 10, "fail_delay_max": 0.2, "block_seconds": 600})
    srv.add_user(ALICE)
    # Loopback is never blocked wholesale; the attacker stands for an internet address.
    monkeypatch.setattr(srv.ctx.auth, "is_trusted", lambda ip: False)
    page = open_page(srv)
    start = time.monotonic()
    messages = []
    for i in range(30):
        sign_in(page, password=f"guess number {i}")
        messages.append(notice(page))
    assert messages[0] == "Wrong address or password."
    assert messages[-1].startswith("Too many failed sign-ins") and messages.count(messages[-1]) >= 20
    assert time.monotonic() - start >= 9 * 0.1   # each failure before the block was answered slowly
    sign_in(page)   # even the right password now
    assert page.query_selector("#address") is None
    assert not imap_login(srv, PASSWORD)   # and IMAP from the same address is blocked too
    assert srv.ctx.auth.blocked_addresses()[0]["ip"] == "127.0.0.1"
