"""Accounts: users, domains and aliases; add, delete, reset a password, set a quota."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, TabbedContent, TabPane

from appliance.admin.sizes import parse_size
from appliance.tui import models
from appliance.tui.forms import (ConfirmScreen, Field, FormScreen, RecordsScreen, address, addresses, domain, password,
                                 quota, required)
from appliance.tui.screens.base import AdminScreen


class AccountsScreen(AdminScreen):
    MODE = "accounts"
    WATCHES = frozenset({"accounts", "mailbox"})   # mailbox changes move the usage figures
    BINDINGS = [
        Binding("t", "next_tab", "Next tab"),
        Binding("a", "add", "Add"),
        Binding("x", "delete", "Delete"),
        Binding("p", "password", "Password"),
        Binding("o", "quota", "Quota"),
        Binding("d", "dns", "DNS records"),
    ]

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="account-tabs"):
            with TabPane("Users", id="tab-users"):
                yield DataTable(id="account-users", cursor_type="row", zebra_stripes=True)
            with TabPane("Domains", id="tab-domains"):
                yield DataTable(id="account-domains", cursor_type="row")
            with TabPane("Aliases", id="tab-aliases"):
                yield DataTable(id="account-aliases", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#account-users", DataTable).add_columns("Address", "Used", "Quota", "Created")
        self.query_one("#account-domains", DataTable).add_columns("Domain")
        self.query_one("#account-aliases", DataTable).add_columns("Alias", "Delivers to")

    def show_action(self, action: str) -> None:
        tab = {"password": "users", "quota": "users", "dns": "domains"}.get(action)
        if tab is not None:
            self.query_one("#account-tabs", TabbedContent).active = f"tab-{tab}"

    def _tab(self) -> str:
        return self.query_one("#account-tabs", TabbedContent).active.removeprefix("tab-")

    def _table(self, tab: str) -> DataTable:
        return self.query_one(f"#account-{tab}", DataTable)

    def action_next_tab(self) -> None:
        tabs = self.query_one("#account-tabs", TabbedContent)
        order = ["tab-users", "tab-domains", "tab-aliases"]
        tabs.active = order[(order.index(tabs.active) + 1) % len(order)]

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._table(self._tab()).focus()

    # -- data ----------------------------------------------------------------------------

    def reload(self) -> None:
        self.call_admin("users", then=self._show_users)
        self.call_admin("domains", then=self._show_domains)
        self.call_admin("aliases", then=self._show_aliases)

    def _show_users(self, users: list[dict]) -> None:
        table = self._table("users")
        table.clear()
        for u in users:
            table.add_row(u["address"], models.size(u["used"]), models.size(u["quota"]) if u["quota"] else "none",
                          time.strftime("%Y-%m-%d", time.localtime(u["created"])), key=u["address"])

    def _show_domains(self, domains: list[str]) -> None:
        table = self._table("domains")
        table.clear()
        for name in domains:
            table.add_row(name, key=name)

    def _show_aliases(self, aliases: dict[str, list[str]]) -> None:
        table = self._table("aliases")
        table.clear()
        for name, targets in sorted(aliases.items()):
            table.add_row(name, ", ".join(targets), key=name)

    # -- actions -------------------------------------------------------------------------

    def _form(self, form: FormScreen) -> None:
        self.app.push_screen(form, lambda saved: saved and self.reload())

    def action_add(self) -> None:
        tab = self._tab()
        if tab == "users":
            self._form(FormScreen(
                "Add a user",
                "The login name is the full address; its domain must be one of yours (Domains tab).",
                [Field("address", "Address", placeholder="name@example.org", validators=[address()]),
                 Field("password", "Password", password=True, validators=[password()]),
                 Field("quota", "Quota (0 = none)", value="0", validators=[quota()])],
                submit=lambda admin, v: admin.add_user(v["address"].strip(), v["password"],
                                                      parse_size(v["quota"]))))
        elif tab == "domains":
            self._form(FormScreen(
                "Add a domain",
                "Mail for this domain is delivered here; publish its MX record pointing at this server.",
                [Field("name", "Domain", placeholder="example.org", validators=[domain()])],
                submit=lambda admin, v: admin.add_domain(v["name"].strip())))
        else:
            self._form(FormScreen(
                "Add an alias",
                "An alias delivers to one or more addresses; @example.org catches all unknown names.",
                [Field("alias", "Alias", placeholder="sales@example.org or @example.org",
                       validators=[required("the alias address")]),
                 Field("targets", "Delivers to", placeholder="anna@example.org, bob@example.org",
                       validators=[addresses()])],
                submit=lambda admin, v: admin.add_alias(v["alias"].strip(), v["targets"].replace(",", " ").split())))

    def action_delete(self) -> None:
        tab = self._tab()
        key = self.selected_key(self._table(tab))
        if key is None:
            return
        question, method = {
            "users": (f"Delete the user {key} and all their mail?", "delete_user"),
            "domains": (f"Delete the domain {key}? Its users must be deleted first.", "delete_domain"),
            "aliases": (f"Delete the alias {key}?", "delete_alias"),
        }[tab]
        self.app.push_screen(ConfirmScreen(question), lambda yes: yes and self.call_admin(
            method, key, exclusive=False, done=f"deleted {key}", then=lambda _: self.reload()))

    def _selected_user(self) -> str | None:
        if self._tab() != "users":
            self.notify("Choose a user on the Users tab first.")
            return None
        return self.selected_key(self._table("users"))

    def action_password(self) -> None:
        user = self._selected_user()
        if user is not None:
            self._form(FormScreen(
                f"New password for {user}", "The user's mail programs will ask for the new password.",
                [Field("password", "Password", password=True, validators=[password()])],
                submit=lambda admin, v: admin.set_password(user, v["password"])))

    def action_quota(self) -> None:
        user = self._selected_user()
        if user is not None:
            self._form(FormScreen(
                f"Quota for {user}", "Mail over the quota is refused (SMTP 452/552, IMAP NO [OVERQUOTA]).",
                [Field("quota", "Quota (0 = none)", value="0", validators=[quota()])],
                submit=lambda admin, v: admin.set_quota(user, parse_size(v["quota"]))))

    def action_dns(self) -> None:
        if self._tab() != "domains":
            self.notify("Choose a domain on the Domains tab first.")
            return
        name = self.selected_key(self._table("domains"))
        if name is not None:
            self.call_admin("dns_records", name, then=lambda records: self.app.push_screen(
                RecordsScreen(f"DNS records to publish for {name}", dns_text(records), f"dns-{name}.txt")))


def dns_text(records: list[dict]) -> str:
    """Records one to a line, the required ones first, then the optional ones. Values are
    as a DNS provider's form takes them; ``kotakpos dns`` prints zone-file syntax."""
    def lines(optional: bool) -> list[str]:
        return [f"{r['name']}.  IN {r['type']:<5} {r['value']}" for r in records if r["optional"] == optional]
    text = "Publish these at your DNS provider (kotakpos dns prints them for a zone file):\n\n"
    text += "\n".join(lines(False))
    extra = lines(True)
    if extra:
        text += "\n\nOptional (TLS reports, MTA-STS, client auto-setup):\n\n" + "\n".join(extra)
    return text + "\n"
