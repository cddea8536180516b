"""The TUI against a live server: what an administrator sees and does, through Pilot."""

from __future__ import annotations

import imaplib
import logging
import os
import time
import uuid

import pytest
from textual.widgets import DataTable, Input, RichLog

from appliance.server import ADMIN_SOCKET
from appliance.store.models import Delivery, QueueEntry
from appliance.tui.app import attach, in_process
from appliance.tui.screens.base import Banner
from tests.conftest import PASSWORD
from tests.tui.conftest import session_key, stop_relay, table_keys, wait_for

MESSAGE = (b"From: Bob <bob@example.net>\r\nTo: anna@example.org\r\nSubject: quarterly figures\r\n"
           b"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <q1@example.net>\r\n\r\n"
           b"The numbers are in the attachment.\r\n")


def log_text(log: RichLog) -> str:
    return "\n".join(strip.text for strip in log.lines)


async def test_session_appears_within_a_second_and_disappears_on_close(tui_app, office):
    async with tui_app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: tui_app.connected, what="the link")
        await pilot.press("2")
        table = tui_app.screen.query_one("#sessions", DataTable)
        client = office.connect("imap")
        client.recv(1000)
        key = await wait_for(pilot, lambda: session_key(table, client), timeout=1.0, what="the session row")
        assert table.get_row(key)[1] == "imap"
        client.close()
        await wait_for(pilot, lambda: key not in table_keys(table), timeout=1.0, what="the row to go")


async def test_following_a_session_shows_its_commands_without_secrets(tui_app, office):
    if office.store.get_user("anna@example.org") is None:
        office.add_user("anna@example.org")
    async with tui_app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: tui_app.connected, what="the link")
        await pilot.press("2")
        table = tui_app.screen.query_one("#sessions", DataTable)
        client = office.connect("imap")
        client.recv(1000)
        key = await wait_for(pilot, lambda: session_key(table, client), what="the session row")
        table.move_cursor(row=table.get_row_index(key))
        await pilot.press("f")
        follow = tui_app.screen.query_one("#follow", RichLog)
        client.sendall(b"a1 NOOP\r\n")
        client.recv(1000)
        client.sendall(f'a2 LOGIN anna@example.org "{PASSWORD}"\r\n'.encode())
        client.recv(1000)
        client.sendall(b"a3 NOOP\r\n")
        client.recv(1000)
        await wait_for(pilot, lambda: log_text(follow).count("NOOP") == 2, what=lambda: f"two NOOPs in {log_text(follow)!r}")
        assert "LOGIN" in log_text(follow)
        assert PASSWORD not in log_text(follow)
        client.close()
        await wait_for(pilot, lambda: "session closed" in log_text(follow), what="the close")


async def test_disconnecting_a_session_closes_the_client_socket(tui_app, office):
    async with tui_app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tui_app.connected, what="the link")
        await pilot.press("2")
        table = tui_app.screen.query_one("#sessions", DataTable)
        client = office.connect("imap", timeout=3.0)
        client.recv(1000)
        key = await wait_for(pilot, lambda: session_key(table, client), what="the session row")
        table.move_cursor(row=table.get_row_index(key))
        await pilot.press("k")
        await wait_for(pilot, lambda: key not in table_keys(table), what="the row to go")
        received = b""
        while chunk := client.recv(1000):   # a BYE may come first; then the end of the stream
            received += chunk
        assert chunk == b""
        client.close()


def queue_one(office, recipient: str) -> int:
    office.store.deliver(MESSAGE, [], [QueueEntry("anna@example.org", recipient)])
    [entry] = [q for q in office.store.list_queue() if q.recipient == recipient]
    return entry.id


async def test_a_queued_message_appears_and_retry_reaches_the_server(tui_app, office):
    async with tui_app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: tui_app.connected, what="the link")
        await pilot.press("3")
        table = tui_app.screen.query_one("#queue", DataTable)
        recipient = f"carol-{uuid.uuid4().hex[:8]}@example.net"
        queue_id = queue_one(office, recipient)
        await wait_for(pilot, lambda: str(queue_id) in table_keys(table), what="the queue row")
        table.move_cursor(row=table.get_row_index(str(queue_id)))
        assert recipient in table.get_row(str(queue_id))
        await pilot.press("h")
        await wait_for(pilot, lambda: table.get_row(str(queue_id))[4] == "held", what="the held row")
        assert office.store.queue_entry(queue_id).state == "held"
        with office.store.subscribe() as events:
            await pilot.press("r")
            deadline = time.monotonic() + 3
            seen = []
            while time.monotonic() < deadline and not any(getattr(e, "kind", "") == "queued" for e in seen):
                await pilot.pause(0.05)
                seen += events.drain()
        assert any(e.kind == "queued" and queue_id in e.ids for e in seen)
        await pilot.press("e")
        await wait_for(pilot, lambda: office.store.queue_entry(queue_id).state == "queued", what="the release")
        await wait_for(pilot, lambda: table.get_row(str(queue_id))[4] == "queued", what="the row's new state")
        await pilot.press("b", "y")     # give up: the sender gets a bounce, the entry goes
        await wait_for(pilot, lambda: str(queue_id) not in table_keys(table), what="the bounced row to go")
        assert queue_id not in {q.id for q in office.store.list_queue()}


def column_labels(table) -> list[str]:
    return [str(column.label) for column in table.ordered_columns]


def all_but_the_last_column_fit(table) -> bool:
    """Every column is on screen without scrolling; the last one may be cut at the frame."""
    widths = [column.get_render_width(table) for column in table.ordered_columns]
    return sum(widths[:-1]) < table.scrollable_content_region.width


async def test_at_80_columns_the_tables_keep_their_key_columns_and_show_all_on_a_wider_terminal(office):
    queue_one(office, f"wide-{uuid.uuid4().hex[:8]}@example.net")
    office.store.deliver_filtered([], quarantine=(MESSAGE, "bob@example.net", ["anna@example.org"], "spam score 12.5"))
    client = office.connect("imap")
    client.recv(1000)
    tables = {  # screen key, table -> (columns at 80, the columns a wider terminal adds)
        ("2", "#sessions"): (["ID", "Listener", "Peer", "User", "State", "Time"], ["Last command", "In/Out", "TLS"]),
        ("3", "#queue"): (["", "ID", "Recipient", "State", "Tries", "Next try", "Last error"], ["Domain", "Queued"]),
        ("6", "#quarantine"): (["ID", "From", "Subject", "Reason", "For"], ["Held"]),
    }
    app = in_process(office.server.admin)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.connected, what="the link")
            for (key, table_id), (narrow, _) in tables.items():
                await pilot.press(key)
                table = app.screen.query_one(table_id, DataTable)
                await wait_for(pilot, lambda: table.row_count, what=f"rows in {table_id}")
                assert column_labels(table) == narrow
                assert all_but_the_last_column_fit(table), table_id
            await pilot.resize_terminal(120, 40)
            for (key, table_id), (narrow, wider) in tables.items():
                await pilot.press(key)
                table = app.screen.query_one(table_id, DataTable)
                await wait_for(pilot, lambda: set(column_labels(table)) == set(narrow + wider),
                               what=lambda: f"every column of {table_id}, not {column_labels(table)}")
                assert table.row_count
    finally:
        client.close()
        for held in office.store.list_quarantine():
            office.store.delete_quarantined(held.id)


async def test_queue_with_10000_entries_stays_responsive(make_server):
    office = make_server()
    stop_relay(office)
    office.store.deliver(MESSAGE, [], [QueueEntry("anna@example.org", f"u{i}@example.net") for i in range(10000)])
    office.store.hold_queue([q.id for q in office.store.list_queue()])
    app = in_process(office.server.admin)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        await pilot.press("3")
        table = app.screen.query_one("#queue", DataTable)
        summary = app.screen.query_one("#queue-summary")
        await wait_for(pilot, lambda: table.row_count == 250, timeout=5, what="the first page")
        assert "10000 entries (10000 held)" in str(summary.render())
        first = table.ordered_rows[0].key.value
        start = time.monotonic()
        await pilot.press("space", "space", "e")        # mark two, release them
        await wait_for(pilot, lambda: office.store.queue_entry(int(first)).state == "queued", what="the release")
        await wait_for(pilot, lambda: table.get_row(first)[4] == "queued", what="the updated row")
        assert time.monotonic() - start < 3.0
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: "page 2/40" in str(summary.render()), what="the second page")
        # Find one entry among ten thousand and act on it.
        await pilot.press("slash", *"u9999@", "enter")
        await wait_for(pilot, lambda: table.row_count == 1, what="the filtered row")
        await pilot.press("e")
        await wait_for(pilot, lambda: "3 queued" in str(summary.render()),
                       what=lambda: f"the release in {summary.render()}")
        assert [q.recipient for q in office.store.list_queue() if q.state == "queued"] == \
            ["u0@example.net", "u1@example.net", "u9999@example.net"]


async def test_adding_a_user_in_the_form_makes_an_imap_login_work(tui_app, office):
    async with tui_app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tui_app.connected, what="the link")
        await pilot.press("5", "a")
        await wait_for(pilot, lambda: tui_app.screen.query("#form"), what="the form")
        address = f"new-{uuid.uuid4().hex[:8]}@example.org"
        await pilot.press(*address, "enter", *"s3cret-enough", "enter", "enter")
        await wait_for(pilot, lambda: office.store.get_user(address) is not None, what="the user")
    with imaplib.IMAP4_SSL("127.0.0.1", office.port("imaps"), ssl_context=office.tls_context()) as imap:
        assert imap.login(address, "s3cret-enough")[0] == "OK"


async def test_the_user_form_explains_errors_and_stays_open(office):
    app = in_process(office.server.admin)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        await pilot.press("5", "a", *"not-an-address", "ctrl+s")
        errors = str(app.screen.query_one("#error-address").render())
        assert "name@example.org" in errors
        assert "8 characters" in str(app.screen.query_one("#error-password").render())
        # Valid as typed, refused by the server: its reason is shown and the form stays.
        app.screen.query_one("#field-address", Input).value = "anna@elsewhere.org"
        app.screen.query_one("#field-password", Input).value = "long-enough-1"
        await pilot.press("ctrl+s")
        form_error = app.screen.query_one("#form-error")
        await wait_for(pilot, lambda: "Not saved" in str(form_error.render()), what="the server's refusal")
        assert "elsewhere.org" in str(form_error.render())
        assert office.store.get_user("anna@elsewhere.org") is None


async def test_mailboxes_show_a_message_to_read_and_delete(office):
    user = office.add_user("mia@example.org")
    office.store.deliver(MESSAGE, [Delivery(user.id)])
    app = attach(office.data_dir / ADMIN_SOCKET)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        await pilot.press("4")
        users = app.screen.query_one("#users", DataTable)
        await wait_for(pilot, lambda: "mia@example.org" in table_keys(users), what="the user")
        users.move_cursor(row=users.get_row_index("mia@example.org"))
        messages = app.screen.query_one("#messages", DataTable)
        await wait_for(pilot, lambda: messages.row_count == 1, what="the message row")
        assert "quarterly figures" in messages.get_row_at(0)
        # sender, date (with the day, also for today's mail) and subject, on 80 columns
        assert column_labels(messages)[:3] == ["From", "Date", "Subject"] and all_but_the_last_column_fit(messages)
        assert messages.get_row_at(0)[1].startswith(time.strftime("%b %d "))
        assert "INBOX" in table_keys(app.screen.query_one("#folders", DataTable))
        await pilot.press("r")
        viewer = await wait_for(pilot, lambda: app.screen.query("#viewer"), what="the message text")
        assert "The numbers are in the attachment." in viewer.first().text
        await pilot.press("escape", "x", "y")
        await wait_for(pilot, lambda: messages.row_count == 0, what="the deletion")
    mailbox = office.store.get_mailbox(user.id, "INBOX")
    assert office.store.mailbox_status(mailbox.id).messages == 0


async def test_the_log_tails_live_with_a_filter(office):
    app = attach(office.data_dir / ADMIN_SOCKET)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        await pilot.press("7")
        log = app.screen.query_one("#log", RichLog)
        logging.getLogger("kotakpos.test").warning("the disk is getting full")
        await wait_for(pilot, lambda: "the disk is getting full" in log_text(log), what="the log line")
        assert f"test[{os.getpid()}]" in log_text(log)     # which process wrote it
        await pilot.press("slash", *"nothing-like-this")
        await wait_for(pilot, lambda: "the disk" not in log_text(log), what="the filter")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: "the disk is getting full" in log_text(log), what="the line again")


async def test_the_dashboard_shows_the_server_process_with_its_sessions_cpu_and_memory(tui_app, office):
    async with tui_app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tui_app.connected, what="the link")
        table = tui_app.screen.query_one("#workers", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="the process row")
        assert table.border_title == "Server process"     # workers = 1: no supervisor, no restarts
        index, pid, _, _, cpu, memory, restarts = table.get_row("0")
        assert (index, pid, restarts) == ("0", str(os.getpid()), "0")
        assert cpu.endswith("%") and "M/" in memory
        client = office.connect("imap")
        client.recv(1000)
        await wait_for(pilot, lambda: "imap" in table.get_row("0")[3], timeout=5, what="the session in the row")
        client.close()
        await wait_for(pilot, lambda: "imap" not in table.get_row("0")[3], timeout=5, what="the session to go")


async def test_a_server_that_goes_away_is_shown_and_reconnected(make_server):
    office = make_server()
    app = attach(office.data_dir / ADMIN_SOCKET)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        banner = app.screen.query_one(Banner)
        assert not banner.display
        office.stop()
        await wait_for(pilot, lambda: banner.display, what="the banner")
        assert "UNREACHABLE" in str(banner.render())
        again = make_server(data_dir=office.data_dir)
        await wait_for(pilot, lambda: app.connected, timeout=5, what="the reconnection")
        assert not banner.display
        await pilot.press("2")
        table = app.screen.query_one("#sessions", DataTable)
        client = again.connect("imap")
        await wait_for(pilot, lambda: session_key(table, client), what="a session on the new server")
        client.close()


async def test_the_command_palette_runs_every_action_of_every_screen(office):
    app = in_process(office.server.admin)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        titles = {c.title for c in app.get_system_commands(app.screen)}     # on the dashboard
        assert {"Go to Sessions", "Go to Log", "Dash: Refresh", "Sessions: Block IP", "Queue: Retry", "Queue: Mark all",
                "Mail: Read", "Accounts: DNS records", "Filters: Release", "Filters: Edit rules",
                "Log: Filter"} <= titles
        # From the dashboard to the Domains tab of Accounts and its records, in one command.
        await pilot.press("ctrl+p", *"Accounts: DNS records", "enter")
        viewer = await wait_for(pilot, lambda: app.screen.query("#viewer"), what="the DNS records")
        assert "_domainkey.example.org." in viewer.first().text
        await pilot.press("escape", "ctrl+p", *"go to log", "enter")
        await wait_for(pilot, lambda: getattr(app.screen, "MODE", "") == "log", what="the log screen")


async def test_the_dns_records_of_a_domain_are_shown_unwrapped_copied_and_saved(office, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = in_process(office.server.admin)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        await pilot.press("5", "t")
        domains = app.screen.query_one("#account-domains", DataTable)
        await wait_for(pilot, lambda: "example.org" in table_keys(domains), what="the domain")
        domains.move_cursor(row=domains.get_row_index("example.org"))
        await pilot.press("d")
        viewer = (await wait_for(pilot, lambda: app.screen.query("#viewer"), what="the records")).first()
        text = viewer.text
        assert f"example.org.  IN MX    10 {office.ctx.hostname}." in text
        dkim = [line for line in text.splitlines() if "_domainkey.example.org." in line]
        assert any("v=DKIM1; k=rsa" in line and len(line) > 200 for line in dkim), dkim
        # One screen line per record, however long: the key runs off to the right, not across the frame.
        assert viewer.wrapped_document.height == viewer.document.line_count
        await pilot.press("c")
        assert app.clipboard == text
        await pilot.press("s")
        assert (tmp_path / "dns-example.org.txt").read_text() == text


async def test_a_quarantined_message_is_released_into_the_inbox(office):
    user = office.add_user("quinn@example.org")
    raw = MESSAGE.replace(b"quarterly figures", b"held for review")
    office.store.deliver_filtered([], quarantine=(raw, "bob@example.net", [user.address], "blocked attachment type"))
    app = attach(office.data_dir / ADMIN_SOCKET)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        await pilot.press("6")
        held = app.screen.query_one("#quarantine", DataTable)
        await wait_for(pilot, lambda: held.row_count == 1, what="the quarantined message")
        assert held.get_cell(held.ordered_rows[0].key, "reason").startswith("blocked attachment")
        await pilot.press("r", "y")
        await wait_for(pilot, lambda: held.row_count == 0, what="the release")
    inbox = office.store.get_mailbox(user.id, "INBOX")
    assert office.store.mailbox_status(inbox.id).messages == 1
    assert office.store.list_quarantine() == []


async def test_a_message_quarantined_while_the_filters_screen_is_open_shows_at_once(tui_app, office):
    address = "quentin@example.org"
    if office.store.get_user(address) is None:
        office.add_user(address)
    async with tui_app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: tui_app.connected, what="the link")
        await pilot.press("6")
        held = tui_app.screen.query_one("#quarantine", DataTable)
        await wait_for(pilot, lambda: held.border_title, what="the first reading of the quarantine")
        reason = f"virus found: Eicar-{uuid.uuid4().hex[:6]}"
        office.store.deliver_filtered([], quarantine=(MESSAGE, "bob@example.net", [address], reason))
        [entry] = [q for q in office.store.list_quarantine() if q.reason == reason]
        # no key pressed: the store's event brings it
        await wait_for(pilot, lambda: str(entry.id) in table_keys(held), what="the held message")
        assert reason[:20] in " ".join(held.get_row(str(entry.id)))
        office.store.delete_quarantined(entry.id)
        await wait_for(pilot, lambda: str(entry.id) not in table_keys(held), what="the deleted message to go")


async def show_rules_of(pilot, app, address: str) -> None:
    """Go to the Rules tab of the Filters screen and put the cursor on ``address``."""
    await pilot.press("6", "t", "t")
    users = app.screen.query_one("#rule-users", DataTable)
    await wait_for(pilot, lambda: address in table_keys(users), what="the user")
    users.move_cursor(row=users.get_row_index(address))


async def test_rules_are_edited_and_a_bad_script_is_explained(office):
    user = office.add_user("rita@example.org")
    app = in_process(office.server.admin)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        await show_rules_of(pilot, app, "rita@example.org")
        await pilot.press("e")
        await wait_for(pilot, lambda: app.screen.query("#rules-editor"), what="the editor")
        await pilot.press(*"fileinto", "ctrl+s")
        status = app.screen.query_one("#rules-status")
        await wait_for(pilot, lambda: "Not saved: line 1" in str(status.render()), what="the explanation")
        await pilot.press(*["backspace"] * len("fileinto"), *"keep;", "ctrl+s")
        await wait_for(pilot, lambda: office.store.get_sieve(user.id) == "keep;", what="the saved script")


async def test_the_rules_view_says_a_fileinto_to_a_missing_folder_goes_to_inbox(office):
    user = office.add_user("rosa@example.org")
    office.store.set_sieve(user.id, 'require "fileinto";\nif size :over 1M {\n  fileinto "Big";\n}\n')
    app = in_process(office.server.admin)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        await show_rules_of(pilot, app, "rosa@example.org")
        script = app.screen.query_one("#rules-script")
        await wait_for(pilot, lambda: script.border_subtitle == 'line 3: no folder "Big", its mail stays in INBOX',
                       what="the warning")


async def test_an_address_is_blocked_and_unblocked_by_hand(office):
    app = attach(office.data_dir / ADMIN_SOCKET)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        await pilot.press("2", "b")
        await wait_for(pilot, lambda: app.screen.query("#form"), what="the form")
        await pilot.press(*"203.0.113.77", "enter", "enter")
        await wait_for(pilot, lambda: office.ctx.auth.is_blocked("203.0.113.77"), what="the block")
        blocked = app.screen.query_one("#blocked", DataTable)
        await wait_for(pilot, lambda: "203.0.113.77" in table_keys(blocked), what="the blocked row")
        assert blocked.get_row("203.0.113.77")[2].startswith("for 59m")
        blocked.move_cursor(row=blocked.get_row_index("203.0.113.77"))
        await pilot.press("u")
        await wait_for(pilot, lambda: "203.0.113.77" not in table_keys(blocked), what="the row to go")
    assert not office.ctx.auth.is_blocked("203.0.113.77")


async def test_failed_logins_from_loopback_are_shown_as_never_blocked(office):
    if office.store.get_user("anna@example.org") is None:
        office.add_user("anna@example.org")
    with imaplib.IMAP4_SSL("127.0.0.1", office.port("imaps"), ssl_context=office.tls_context()) as imap:
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("anna@example.org", "not the password")
    app = attach(office.data_dir / ADMIN_SOCKET)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        await pilot.press("2")
        blocked = app.screen.query_one("#blocked", DataTable)
        await wait_for(pilot, lambda: "127.0.0.1" in table_keys(blocked), what="the failing address")
        assert blocked.get_row("127.0.0.1")[2] == "never (trusted)"
        assert "loopback" in str(blocked.border_subtitle)
        await pilot.press("b")      # the form to block an address says it too
        form = await wait_for(pilot, lambda: app.screen.query(".explanation"), what="the form")
        assert "except loopback (127.0.0.0/8, ::1)" in str(form.first().render())


async def test_an_alias_added_in_the_form_resolves(office):
    app = in_process(office.server.admin)
    if office.store.get_user("anna@example.org") is None:
        office.add_user("anna@example.org")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connected, what="the link")
        await pilot.press("5", "t", "t", "a")
        await wait_for(pilot, lambda: app.screen.query("#form"), what="the form")
        app.screen.query_one("#field-alias", Input).value = "sales@example.org"
        app.screen.query_one("#field-targets", Input).value = "anna@example.org"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "sales@example.org" in office.store.list_aliases(), what="the alias")
        aliases = app.screen.query_one("#account-aliases", DataTable)
        await wait_for(pilot, lambda: "sales@example.org" in table_keys(aliases), what="the alias row")
    assert office.store.list_aliases()["sales@example.org"] == ["anna@example.org"]
