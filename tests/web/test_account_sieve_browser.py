"""The account page's raw Sieve editor in a real browser (Debian's chromium via Playwright).

The scripts it shows and stores are ManageSieve's: each flow checks the page, then what
ManageSieve (the wire client, or Debian's sieve-connect) and delivery over SMTP and IMAP
make of it. Screenshots at phone and desktop width go to ``tests/artifacts/account/``.
"""

from __future__ import annotations

import shutil
from urllib.parse import urlencode

from appliance.managesieve import replies as R
from tests.conftest import PASSWORD
from tests.interop.test_managesieve_sieveconnect import sieve_connect
from tests.mda_helpers import imap_folders, plain, send
from tests.protocol.managesieve_wire import SieveWire, literal
# The browser, the server and the page come from the account page's tests, and so does
# their skip when Debian's chromium is not installed (pytestmark).
from tests.web.test_account_browser import (ARTIFACTS, ALICE, DESKTOP, PHONE, browser, notice, office,  # noqa: F401
                                            open_page, pytestmark, sign_in)

BROKEN = 'require "fileinto";\nif header :contains "subject" "invoice" {\n  fileinto "Bills"\n}\n'
FILING = 'require "fileinto";\nif header :contains "subject" "invoice" {\n  fileinto "Bills";\n}\n'


def write(page, name: str, script: str, button: str = "save") -> None:
    page.fill("#sieve-editor input[name=name]", name)
    page.fill("#sieve-editor textarea[name=script]", script)
    page.click(f"#sieve-editor button[value={button}]")


def listed(srv) -> list[bytes]:
    """LISTSCRIPTS over a live ManageSieve session."""
    wire = SieveWire.logged_in(srv, ALICE, PASSWORD)
    wire.send("LISTSCRIPTS")
    return wire.until_ok()


def screenshot(page, name: str) -> None:
    """The Sieve panel alone, at the page's current width."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#sieve").screenshot(path=ARTIFACTS / f"{name}.png")


def editor_text(page) -> str:
    return page.input_value("#sieve-editor textarea[name=script]").replace("\r\n", "\n")


def test_a_script_with_an_error_shows_the_line_and_nothing_is_saved(office, open_page):
    page = open_page(office, PHONE)
    sign_in(page)
    assert page.inner_text("#sieve-status").startswith("No script is active.")
    write(page, "office", BROKEN)
    assert notice(page) == "The script was not saved: see below."
    error = page.inner_text("#sieve-error")
    assert error.startswith("Line 4:")   # the missing ";" is found at the "}" that follows it
    assert page.inner_text("#sieve-error-line").split() == ["4", "}"]
    assert page.inner_text("#sieve-error mark") == "}"
    assert "fileinto \"Bills\"" in error   # the lines before it are quoted for context
    assert editor_text(page) == BROKEN and page.input_value("#sieve-editor input[name=name]") == "office"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "sieve-error-phone")
    page.set_viewport_size(DESKTOP)
    screenshot(page, "sieve-error-desktop")
    assert office.store.list_sieve_scripts(office.store.get_user(ALICE).id) == []
    assert listed(office) == []
    # "Check" of the corrected script says it is valid and still stores nothing.
    write(page, "office", FILING, button="check")
    assert notice(page) == "The script is valid. It is not saved yet."
    assert "no folder \"Bills\"" in page.inner_text("#sieve")   # the missing folder is named with its line
    assert listed(office) == []


def test_a_fileinto_script_written_and_activated_on_the_page_files_mail_sent_over_smtp(office, open_page, tmp_path):
    user = office.store.get_user(ALICE)
    office.store.create_mailbox(user.id, "Bills")
    page = open_page(office, DESKTOP)
    sign_in(page)
    write(page, "office", FILING)
    assert notice(page) == "The script office was saved."
    assert "Editing office" in page.inner_text("#sieve-editor h3") and editor_text(page) == FILING
    assert listed(office) == [b'"office"']
    page.click("#sieve-scripts tbody tr button")   # Activate
    assert notice(page) == "office is now the active script."
    assert page.inner_text("#sieve-active") == "office"
    assert "active" in page.inner_text("#sieve-scripts tbody tr")
    screenshot(page, "sieve-active-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "sieve-active-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # ManageSieve and sieve-connect see the same script, active, byte for byte as typed
    # (a browser sends a text box's lines with CRLF, as RFC 5228 writes Sieve).
    assert listed(office) == [b'"office" ACTIVE']
    if shutil.which("sieve-connect"):
        assert sieve_connect(office, "--list").stdout.split() == ['"office"', "ACTIVE"]
        fetched = tmp_path / "office.sieve"
        got = sieve_connect(office, "--download", "--remotesieve", "office", "--localsieve", str(fetched))
        assert got.returncode == 0 and fetched.read_bytes() == FILING.replace("\n", "\r\n").encode(), got.stderr
    send(office, plain(subject="Invoice 7 for October"))
    send(office, plain(subject="lunch?"))
    folders = imap_folders(office, ALICE)
    assert folders["Bills"] == [b"Subject: Invoice 7 for October"] and folders["INBOX"] == [b"Subject: lunch?"]


def test_a_script_over_the_configured_limit_is_refused_with_the_limit(make_server, open_page):
    srv = make_server(managesieve={"max_script_size": 500, "max_scripts": 1})
    srv.add_user(ALICE)
    page = open_page(srv)
    sign_in(page)
    assert "Scripts: at most 1, each at most 500 B." in page.inner_text("#sieve")
    big = "# " + "x" * 500 + "\nkeep;\n"
    write(page, "big", big)
    assert notice(page) == "The script was not saved: see below."
    # 511 bytes as stored: the browser sends the text box's lines with CRLF.
    assert page.inner_text("#sieve-error") == \
        "The script is 511 B (511 bytes): a script may be at most 500 B (500 bytes)."
    assert editor_text(page) == big
    # ManageSieve applies the same configured limit.
    wire = SieveWire.logged_in(srv, ALICE, PASSWORD)
    wire.transact(b'PUTSCRIPT "big" ' + literal(big), R.NO_MAXSIZE)
    wire.transact('HAVESPACE "big" 500', R.OK_SPACE)
    assert srv.store.list_sieve_scripts(srv.store.get_user(ALICE).id) == []
    # And the same number of scripts.
    write(page, "one", "keep;\n")
    assert notice(page) == "The script one was saved."
    page.click("#sieve-new")
    write(page, "two", "keep;\n")
    assert page.inner_text("#sieve-error") == "You have reached the limit of scripts (1): delete one first."
    wire.transact('PUTSCRIPT "two" "keep;"', R.NO_MAXSCRIPTS)


def test_scripts_from_managesieve_are_renamed_deactivated_and_deleted_on_the_page(office, open_page):
    wire = SieveWire.logged_in(office, ALICE, PASSWORD)
    wire.transact('PUTSCRIPT "holiday" "keep;"', R.OK_STORED)
    wire.transact('PUTSCRIPT "work" "discard;"', R.OK_STORED)
    wire.transact('SETACTIVE "work"', R.OK_ACTIVATED)
    page = open_page(office, locale="id-ID")
    sign_in(page)
    assert page.inner_text("#sieve h2") == "Skrip Sieve"
    assert page.inner_text("#sieve-active") == "work" and "Skrip aktif:" in page.inner_text("#sieve-status")
    assert [r.split("\t")[0].strip() for r in page.locator("#sieve-scripts tbody tr").all_inner_texts()] == \
        ["holiday", "work aktif"]
    page.click("#language")
    page.click("#sieve-scripts a:text-is('work')")
    assert editor_text(page) == "discard;" and page.is_disabled("#sieve-delete button")
    page.fill("#sieve-rename input[name=new]", "holiday")
    page.click("#sieve-rename button")
    assert notice(page) == "A script called holiday exists already: choose another name, or open that one."
    page.fill("#sieve-rename input[name=new]", "kantor")
    page.click("#sieve-rename button")
    assert notice(page) == "The script is now called kantor."
    assert page.inner_text("#sieve-active") == "kantor"   # still the active one
    page.click("#sieve-scripts tr.active button")   # Deactivate
    assert notice(page) == "No script is active now."
    page.click("#sieve-delete button")
    assert notice(page) == "The script kantor was deleted."
    wire.send("LISTSCRIPTS")
    assert wire.until_ok() == [b'"holiday"']
    screenshot(page, "sieve-list-desktop")


def test_a_sieve_form_without_the_csrf_token_changes_nothing(office, open_page):
    page = open_page(office)
    sign_in(page)
    base = f"https://127.0.0.1:{office.server.web.port('https')}"
    for path, form in (("save", {"name": "evil", "script": "discard;"}), ("activate", {"name": "evil", "on": "1"})):
        response = page.request.post(f"{base}/account/sieve/{path}", data=urlencode({**form, "csrf": "forged"}),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"},
                                     max_redirects=0)
        assert response.status == 403
    assert office.store.list_sieve_scripts(office.store.get_user(ALICE).id) == []
