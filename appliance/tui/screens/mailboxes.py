"""Mailboxes: users -> folders -> messages; read a message, delete one; usage against quota."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable

from appliance.tui import models
from appliance.tui.forms import ConfirmScreen, TextScreen
from appliance.tui.screens.base import AdminScreen
from appliance.tui.table import Column, FitTable

MESSAGES_SHOWN = 500    # newest first; the admin API pages, the TUI shows the first page
SENDER_WIDTH = 20
SUBJECT_WIDTH = 36

# On 80 columns the user and folder lists get narrower, and each message keeps its sender,
# date and subject. Fixed widths elsewhere: cells are cut to them, and the columns never
# jump as folders change.
USER_COLUMNS = (Column("Address", "address"), Column("Used/quota", "usage", narrow=False))
FOLDER_COLUMNS = (Column("Folder", "name"), Column("Msgs", "messages"), Column("New", "unseen"),
                  Column("Size", "size", narrow=False))
MESSAGE_COLUMNS = (Column("From", "from", width=SENDER_WIDTH, narrow_width=14), Column("Date", "date", width=12),
                   Column("Subject", "subject", width=SUBJECT_WIDTH), Column("Size", "size", width=5, narrow=False),
                   Column("Flags", "flags", width=20, narrow=False))


class MailboxesScreen(AdminScreen):
    MODE = "mailboxes"
    WATCHES = frozenset({"mailbox", "accounts"})
    BINDINGS = [
        Binding("r", "read", "Read"),
        Binding("x", "delete", "Delete msg"),
        Binding("tab", "app.focus_next", "Next pane"),
    ]

    def __init__(self):
        super().__init__()
        self._user: str | None = None            # the user whose folders are shown
        self._folder: str | None = None          # the folder whose messages are shown

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="mail"):
            with Vertical(id="mail-left"):
                users = FitTable(USER_COLUMNS, id="users", cursor_type="row")
                users.border_title = "Users"
                yield users
                folders = FitTable(FOLDER_COLUMNS, id="folders", cursor_type="row")
                folders.border_title = "Folders"
                yield folders
            messages = FitTable(MESSAGE_COLUMNS, id="messages", cursor_type="row", zebra_stripes=True)
            messages.border_title = "Messages"
            yield messages

    # -- data ----------------------------------------------------------------------------

    def reload(self) -> None:
        self.call_admin("users", then=self._show_users)

    def _show_users(self, users: list[dict]) -> None:
        self.query_one("#users", FitTable).replace_rows(
            [(u["address"], {"address": u["address"], "usage": models.quota_text(u["used"], u["quota"])})
             for u in users])
        if not users:
            self._user = self._folder = None
            self.query_one("#folders", FitTable).clear_rows()
            self.query_one("#messages", FitTable).clear_rows()
        else:
            self._load_folders()

    def _load_folders(self) -> None:
        user = self.selected_key(self.query_one("#users", DataTable))
        if user != self._user:
            self._user, self._folder = user, None
        if self._user is not None:
            self.call_admin("mailboxes", self._user, then=self._show_folders)

    def _show_folders(self, folders: list[dict]) -> None:
        table = self.query_one("#folders", FitTable)
        if self._folder is None:
            table.clear_rows()   # another user's folders: start again at their INBOX
        table.replace_rows([(f["name"], {"name": f["name"], "messages": str(f["messages"]), "unseen": str(f["unseen"]),
                                         "size": models.size(f["size"])}) for f in folders], prefer="INBOX")
        self._load_messages()

    def _load_messages(self) -> None:
        self._folder = self.selected_key(self.query_one("#folders", DataTable))
        if self._user is not None and self._folder is not None:
            self.call_admin("messages", self._user, self._folder, MESSAGES_SHOWN, then=self._show_messages)
        else:
            self.query_one("#messages", FitTable).clear_rows()

    def _show_messages(self, messages: list[dict]) -> None:
        now = self.app.now()
        table = self.query_one("#messages", FitTable)
        table.replace_rows([(str(m["uid"]), {
            "from": models.sender(m["from"], SENDER_WIDTH), "date": models.mail_date(m["date"], now),
            "subject": models.clip(m["subject"] or "(no subject)", SUBJECT_WIDTH), "size": models.size(m["size"]),
            "flags": " ".join(f.lstrip("\\") for f in m["flags"])}) for m in messages])
        table.border_title = f"Messages in {self._folder}" if self._folder else "Messages"

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key is not None else None
        if event.data_table.id == "users" and key != self._user:
            self._load_folders()
        elif event.data_table.id == "folders" and key != self._folder:
            self._load_messages()

    # -- actions -------------------------------------------------------------------------

    def _selected_message(self) -> int | None:
        key = self.selected_key(self.query_one("#messages", DataTable))
        return int(key) if key is not None and self._user and self._folder else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "messages":
            self.action_read()
        else:
            self.focus_next()

    def action_read(self) -> None:
        uid = self._selected_message()
        if uid is not None:
            title = f"{self._user} {self._folder} #{uid}"
            self.call_admin("message", self._user, self._folder, uid,
                            then=lambda text: self.app.push_screen(TextScreen(title, text)))

    def action_delete(self) -> None:
        uid = self._selected_message()
        if uid is None:
            return
        user, folder = self._user, self._folder

        def confirmed(yes: bool) -> None:
            if yes:
                self.call_admin("delete_message", user, folder, uid, exclusive=False,
                                done=f"deleted message {uid} from {user} {folder}")

        self.app.push_screen(ConfirmScreen(f"Delete message {uid} from {user}'s {folder}? It cannot be undone."),
                             confirmed)
