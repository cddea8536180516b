"""Modal forms and confirmations. A form checks its fields as you type and says what is
wrong in words; the server's own refusal (an AdminError) is shown in the form, which stays
open so the entry can be fixed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.validation import Function, Validator
from textual.widgets import Footer, Input, Label, Static, TextArea
from textual.worker import WorkerState

from appliance.admin.api import AdminError
from appliance.admin.sizes import parse_size

ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}", re.IGNORECASE)


def required(what: str) -> Validator:
    return Function(lambda v: bool(v.strip()), f"Enter {what}.")


def address() -> Validator:
    return Function(lambda v: bool(ADDRESS.fullmatch(v.strip())), "An address looks like name@example.org.")


def addresses() -> Validator:
    return Function(lambda v: bool(v.split()) and all(ADDRESS.fullmatch(a) for a in v.replace(",", " ").split()),
                    "One or more addresses like name@example.org, separated by spaces or commas.")


def domain() -> Validator:
    return Function(lambda v: bool(DOMAIN.fullmatch(v.strip())), "A domain looks like example.org (no @, no spaces).")


def password() -> Validator:
    return Function(lambda v: len(v) >= 8, "Use at least 8 characters.")


def one_of(*choices: str) -> Validator:
    return Function(lambda v: v.strip() in choices, f"One of: {', '.join(choices)}.")


def positive_number() -> Validator:
    def check(v: str) -> bool:
        try:
            return float(v) > 0
        except ValueError:
            return False
    return Function(check, "Enter a number greater than 0.")


def quota() -> Validator:
    def check(v: str) -> bool:
        try:
            parse_size(v)
            return True
        except ValueError:
            return False
    return Function(check, "A size like 500M or 2G (0 = no quota).")


@dataclass
class Field:
    name: str                               # the key in the values passed to submit
    label: str
    value: str = ""
    password: bool = False
    validators: list[Validator] = field(default_factory=list)
    placeholder: str = ""


class FormScreen(ModalScreen[bool]):
    """Fields, checked locally, then ``submit(admin, values)`` in a thread worker.

    Dismissed with True once submit returns; an AdminError keeps the form open with the
    server's explanation.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, title: str, explanation: str, fields: list[Field],
                 submit: Callable[[Any, dict[str, str]], Any]):
        super().__init__()
        self.title_text = title
        self.explanation = explanation
        self.fields = fields
        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(id="form") as box:
            box.border_title = self.title_text
            yield Static(self.explanation, classes="explanation")
            for f in self.fields:
                yield Label(f.label)
                yield Input(f.value, placeholder=f.placeholder, password=f.password, validators=f.validators,
                            id=f"field-{f.name}", valid_empty=False)
                yield Static("", id=f"error-{f.name}", classes="field-error")
            yield Static("Enter on the last field or Ctrl+S saves; Esc cancels.", classes="hint")
            yield Static("", id="form-error")
        yield Footer(compact=True, show_command_palette=False)

    def _input(self, name: str) -> Input:
        return self.query_one(f"#field-{name}", Input)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show_errors(event.input, event.validation_result)

    def _show_errors(self, widget: Input, result) -> None:
        name = widget.id.removeprefix("field-")
        text = " ".join(result.failure_descriptions) if result and not result.is_valid else ""
        error = self.query_one(f"#error-{name}", Static)
        error.update(text)
        error.set_class(bool(text), "-shown")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        index = inputs.index(event.input)
        if index + 1 < len(inputs):
            inputs[index + 1].focus()
        else:
            self.action_save()

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_save(self) -> None:
        valid = True
        for f in self.fields:
            widget = self._input(f.name)
            result = widget.validate(widget.value)
            self._show_errors(widget, result)
            if result is not None and not result.is_valid:
                if valid:
                    widget.focus()
                valid = False
        if not valid:
            return
        values = {f.name: self._input(f.name).value for f in self.fields}
        admin = self.app.admin
        self.query_one("#form-error", Static).update("saving...")

        def job():
            if admin is None:
                raise AdminError("not connected to the server")
            return self.submit(admin, values)

        self.run_worker(job, name="save", group="save", thread=True, exclusive=True, exit_on_error=False)

    def on_worker_state_changed(self, event) -> None:
        if event.worker.name != "save":
            return
        if event.state == WorkerState.SUCCESS:
            self.dismiss(True)
        elif event.state == WorkerState.ERROR:
            error = event.worker.error
            text = str(error) if isinstance(error, AdminError) else f"the server did not answer ({error})"
            self.query_one("#form-error", Static).update(f"Not saved: {text}")


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; y confirms, n or Esc declines."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "Cancel")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(self.question)
            yield Static("[b]y[/b] yes   [b]n[/b] no", classes="hint")
        yield Footer(compact=True, show_command_palette=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TextScreen(ModalScreen[None]):
    """Read-only text (a message, a queue entry), scrollable with the keyboard."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("q", "close", "Close", show=False)]

    def __init__(self, title: str, text: str, wrap: bool = True):
        super().__init__()
        self.title_text = title
        self.text = text
        self.wrap = wrap

    def compose(self) -> ComposeResult:
        viewer = TextArea(self.text, read_only=True, soft_wrap=self.wrap, show_line_numbers=False, id="viewer")
        viewer.border_title = self.title_text
        yield viewer
        yield Footer(compact=True, show_command_palette=False)

    def action_close(self) -> None:
        self.dismiss(None)


class RecordsScreen(TextScreen):
    """DNS records to publish, one to a line and never wrapped (a DKIM key is longer than
    any terminal is wide, and a wrapped one cannot be copied off the screen): the arrow
    keys scroll sideways, c copies all of them, s saves them to a file."""

    BINDINGS = [Binding("c", "copy", "Copy all"), Binding("s", "save", "Save to file")]

    def __init__(self, title: str, text: str, filename: str):
        super().__init__(title, text, wrap=False)
        self.filename = filename

    def action_copy(self) -> None:
        # OSC 52: the terminal puts it on the clipboard, also over ssh (tmux: set-clipboard on).
        self.app.copy_to_clipboard(self.text)
        self.notify("Copied the records to the clipboard, if your terminal allows it (else s saves them).")

    def action_save(self) -> None:
        path = Path.cwd() / self.filename
        try:
            path.write_text(self.text, encoding="utf-8")
        except OSError as e:
            self.notify(f"Cannot write {path}: {e.strerror}", severity="error")
            return
        self.notify(f"Saved to {path}")


class RulesEditor(ModalScreen[bool]):
    """A user's Sieve script in an editor; saving checks it on the server, which names the
    line and the reason of an error and keeps the editor open."""

    BINDINGS = [Binding("ctrl+s", "save", "Save"), Binding("ctrl+k", "check", "Check"),
                Binding("escape", "cancel", "Cancel")]

    def __init__(self, address: str, script: str):
        super().__init__()
        self.address = address
        self.script = script

    def compose(self) -> ComposeResult:
        editor = TextArea(self.script, id="rules-editor", show_line_numbers=True, tab_behavior="indent")
        editor.border_title = f"Sieve rules of {self.address}"
        yield editor
        yield Static("RFC 5228 Sieve: keep, fileinto, redirect, discard, reject, vacation. An empty script "
                     "removes the rules.", id="rules-status")
        yield Footer(compact=True, show_command_palette=False)

    def _run(self, name: str, call) -> None:
        admin = self.app.admin
        text = self.query_one("#rules-editor", TextArea).text

        def job():
            if admin is None:
                raise AdminError("not connected to the server")
            return call(admin, text)

        self.run_worker(job, name=name, group="rules", thread=True, exclusive=True, exit_on_error=False)

    def action_check(self) -> None:
        self._run("check", lambda admin, text: admin.rules_check(text, self.address))

    def action_save(self) -> None:
        self._run("save", lambda admin, text: admin.rules_set(self.address, text))

    def action_cancel(self) -> None:
        self.dismiss(False)

    def on_worker_state_changed(self, event) -> None:
        status = self.query_one("#rules-status", Static)
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            reason = str(error) if isinstance(error, AdminError) else f"the server did not answer ({error})"
            status.update(f"[b red]Not saved: {reason}[/]" if event.worker.name == "save" else f"[b red]{reason}[/]")
        elif event.state == WorkerState.SUCCESS:
            if event.worker.name == "save":
                self.dismiss(True)
            else:
                result = event.worker.result
                status.update(("The script is valid." + "".join(
                    f"\n[b yellow]Line {w['line']}: {w['warning']}[/]" for w in result["warnings"]))
                    if result["ok"] else f"[b red]Line {result['line']}: {result['error']}[/]")
