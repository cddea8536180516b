"""``kotakpos import``, ``kotakpos export``: moving mail in and out (logic in appliance.migrate).

These work on the store directly, with or without a running server: SQLite lets the two
processes share the file, and every write is its own durable transaction.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click

from appliance.cli import backup as backup_group, main, with_paths
from appliance.migrate import exporter, maildir, mbox
from appliance.migrate.importer import Importer, Summary
from appliance.admin.api import AdminError
from appliance.admin.client import AdminClient, ServerNotRunning
from appliance.server import ADMIN_SOCKET, open_store
from appliance.store import StoreError, normalize_mailbox_name


@contextmanager
def store_of(paths):
    """The store file, opened here even while a server runs; afterwards a running server is
    told that it changed, so its IMAP and POP3 sessions and the TUI see the change at once."""
    paths.config()  # refuse a broken config file here too
    paths.require_store()
    store = open_store(paths.data_dir)
    try:
        yield store
    except StoreError as e:
        raise click.ClickException(str(e)) from None
    finally:
        store.close()
        if store.db.commits:
            _notify_server(paths)


def _notify_server(paths) -> None:
    try:
        client = AdminClient(paths.data_dir / ADMIN_SOCKET)
    except ServerNotRunning:
        return
    try:
        client.notify()
    except (AdminError, OSError):
        pass  # it reads the store's change journal within a second anyway
    finally:
        client.close()


def _progress(length: int, label: str):
    return click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True)


def run_import(importer: Importer, folders) -> Summary:
    """Import source folders with a progress bar each."""
    total = Summary()
    for folder in folders:
        with _progress(folder.count, folder.name) as bar:
            total.add(importer.import_folder(folder, bar.update))
    return total


def print_summary(summary: Summary, what: str) -> None:
    for failure in summary.failed:
        click.echo(f"failed: {failure}", err=True)
    click.echo(f"{what}: {summary.text()}")
    if summary.failed:
        sys.exit(1)


def _folder_name(folder: str | None) -> str | None:
    try:
        return None if folder is None else normalize_mailbox_name(folder)
    except StoreError as e:
        raise click.BadParameter(str(e), param_hint="--folder") from None


@main.group("import")
def import_group():
    """Bring mail in from files or from another server (running again copies only what is new)."""


to_option = click.option("--to", "address", required=True, metavar="ADDRESS", help="The local user who gets the mail.")
folder_option = click.option("--folder", metavar="NAME",
                             help="Only this folder (for a single mbox file: the folder it goes into).")


@import_group.command("mbox")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@to_option
@folder_option
@with_paths
def import_mbox(paths, path, address, folder):
    """Import an mbox file, or a folder of them (Work/Projects.mbox is the folder Work/Projects)."""
    folder = _folder_name(folder)
    if path.is_file():
        if not mbox.is_mbox(path):
            raise click.ClickException(f"{path} is not an mbox file")
        folders = [mbox.read(path, folder or _stem_name(path))]
    else:
        folders = [f for f in mbox.read_tree(path) if folder is None or f.name == folder]
        if not folders:
            raise click.ClickException(f"no mbox {'for ' + folder + ' ' if folder else ''}in {path}")
    with store_of(paths) as store:
        print_summary(run_import(Importer(store, address), folders), f"imported into {address}")


def _stem_name(path: Path) -> str:
    name = path.name[:-len(mbox.SUFFIX)] if path.name.endswith(mbox.SUFFIX) else path.name
    return "INBOX" if name.lower() == "inbox" else name


@import_group.command("maildir")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@to_option
@folder_option
@with_paths
def import_maildir(paths, path, address, folder):
    """Import a Maildir++ tree (the root is INBOX, .Sub.Folder its subfolders) or one Maildir
    (a ".Sub.Folder" given alone keeps its name; --folder names where a single Maildir goes)."""
    folder = _folder_name(folder)
    tree = maildir.read_tree(path)
    folders = [f for f in tree if folder is None or f.name == folder]
    if not folders and folder is not None and len(tree) == 1:
        folders = [maildir.read(path, folder)]  # one Maildir given: --folder says where it goes
    if not folders:
        raise click.ClickException(f"no Maildir {'folder ' + folder + ' ' if folder else ''}in {path}")
    with store_of(paths) as store:
        print_summary(run_import(Importer(store, address), folders), f"imported into {address}")


@main.command("export")
@click.argument("address")
@click.option("--format", "fmt", type=click.Choice(exporter.FORMATS), required=True, help="File format.")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@folder_option
@with_paths
def export(paths, address, fmt, directory, folder):
    """Write ADDRESS's mail into DIR: one mbox file per folder, or a Maildir++ tree."""
    folder = _folder_name(folder)
    with store_of(paths) as store:
        _, mailboxes = exporter.folders_of(store, address, folder)
        directory.mkdir(parents=True, exist_ok=True)
        written = 0
        for mailbox in mailboxes:
            with _progress(store.mailbox_status(mailbox.id).messages, mailbox.name) as bar:
                written += exporter.export_folder(store, mailbox, fmt, directory, bar.update)
    click.echo(f"exported {written} message{'s' * (written != 1)} in {len(mailboxes)} "
               f"folder{'s' * (len(mailboxes) != 1)} of {address} to {directory}")


@import_group.command("imap")
@click.option("--host", required=True, help="The remote IMAP server.")
@click.option("--port", type=int, help="[default: 993 with --tls, 143 with --starttls]")
@click.option("--tls", "security", flag_value="tls", default=True, help="TLS from the first byte (the default).")
@click.option("--starttls", "security", flag_value="starttls", help="Plain connection upgraded with STARTTLS.")
@click.option("--user", "remote_user", required=True, help="Login name at the remote server.")
@click.option("--password-stdin", is_flag=True, help="Read the remote password from standard input.")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False), help="Trust the CA certificates in this PEM file.")
@click.option("--insecure", is_flag=True, help="Do not check the remote certificate (a test or LAN server).")
@to_option
@with_paths
def import_imap(paths, host, port, security, remote_user, password_stdin, cafile, insecure, address):
    """Copy every folder of a remote IMAP account; a second run copies only what is new."""
    from appliance.migrate.imap import ImapImport, Remote, RemoteError
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Remote password", hide_input=True)
    else:
        raise click.UsageError("no terminal to ask for the password; pass it with --password-stdin")
    remote = Remote(host, port or (993 if security == "tls" else 143), security, remote_user, password, cafile, insecure)
    with store_of(paths) as store:
        importer = Importer(store, address)
        try:
            run = ImapImport(importer, remote)
        except RemoteError as e:
            raise click.ClickException(str(e)) from None
        total = Summary()
        try:
            for folder, uidvalidity, uids in run.plan():
                with _progress(len(uids), folder.name) as bar:
                    total.add(run.copy_folder(folder, uidvalidity, uids, bar.update))
        except RemoteError as e:
            total.failed.append(str(e))
        finally:
            run.close()
        for name in run.skipped_virtual:
            click.echo(f"skipped {name}: a virtual folder that only repeats others")
        total.failed += [f"{name}: the remote server would not open it" for name in run.unreadable]
        print_summary(total, f"imported {remote.source} into {address}")


# -- snapshots (``backup`` and ``restore`` are defined in appliance/cli/__init__.py) ----------


@backup_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def backup_verify(file):
    """Check a snapshot: integrity, every message's bytes present; print what it holds."""
    from appliance.migrate.backup import verify
    verdict = verify(file)
    if verdict.counts:
        c = verdict.counts
        click.echo(f"{file}: {c['users']} users, {c['mailboxes']} folders, {c['messages']} messages, {c['blobs']} blobs")
    for problem in verdict.problems:
        click.echo(f"problem: {problem}", err=True)
    if not verdict.ok:
        sys.exit(1)
    click.echo(f"{file}: ok")


def restore_user(paths, file: Path, address: str, folder: str | None) -> None:
    """``kotakpos restore FILE --user ADDRESS [--folder NAME]``: see appliance.migrate.backup.restore."""
    from appliance.migrate.backup import restore, verify
    verdict = verify(file)
    if not verdict.ok:
        raise click.ClickException(f"{file} is not a usable snapshot: {'; '.join(verdict.problems)}")
    folder = _folder_name(folder)
    total = Summary()
    with store_of(paths) as store:
        for name, count, run in restore(store, file, address, folder):
            with _progress(count, name) as bar:
                total.add(run(bar.update))
    print_summary(total, f"restored into {address}")
