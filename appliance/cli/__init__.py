"""The ``kotakpos`` command: thin click commands over the admin API and the server.

Every command honours ``--data``/``KOTAKPOS_DATA`` and ``--config``/``KOTAKPOS_CONFIG``.
Account commands work whether or not a server runs: with one, they go through its admin
socket (so live views see the change); without, through an in-process admin API on the
store. ``main(argv)`` can be called with an argument list, for tests.
"""

from __future__ import annotations

import functools
import logging
import shutil
import sqlite3
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click

from appliance import __version__
from appliance.admin.api import AdminAPI, AdminError
from appliance.admin.client import AdminClient, ServerNotRunning
from appliance.config import ConfigError, with_overrides
from appliance.net import BindError
from appliance.server import (ADMIN_SOCKET, DataFolderInUse, Server, folder_in_use, load_config, open_store,
                              resolve_paths, setup_logging)
from appliance.store import DB_NAME, backup_database
from appliance.tui.models import duration


class Paths:
    def __init__(self, data: str | None, config: str | None):
        self.data_dir, self.config_path = resolve_paths(data, config)

    def config(self, write_sample: bool = False):
        try:
            return load_config(self.data_dir, self.config_path, write_sample=write_sample)
        except ConfigError as e:
            raise click.ClickException(str(e)) from None


@contextmanager
def admin(paths: Paths):
    """The running server's admin API, or an in-process one over the store."""
    try:
        client = AdminClient(paths.data_dir / ADMIN_SOCKET)
    except ServerNotRunning:
        paths.config()  # refuse a broken config file here too
        store = open_store(paths.data_dir)
        api = AdminAPI(store=store)
        try:
            yield api
        except AdminError as e:
            raise click.ClickException(str(e)) from None
        finally:
            api.close()
            store.close()
        return
    try:
        yield client
    except AdminError as e:
        raise click.ClickException(str(e)) from None
    finally:
        client.close()


def read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise click.UsageError("no terminal to ask for the password; pass it with --password-stdin")
    if not password:
        raise click.ClickException("the password must not be empty")
    return password


data_option = click.option("--data", envvar="KOTAKPOS_DATA", metavar="DIR",
                           help="Data folder [default: ./kotakpos-data; env KOTAKPOS_DATA].")
config_option = click.option("--config", "config_file", envvar="KOTAKPOS_CONFIG", metavar="FILE",
                             help="Config file [default: DATA/kotakpos.toml; env KOTAKPOS_CONFIG].")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@data_option
@config_option
@click.version_option(__version__, prog_name="kotakpos")
@click.pass_context
def main(ctx: click.Context, data: str | None, config_file: str | None) -> None:
    """Kotakpos: the mail server for a small office."""
    ctx.obj = Paths(data, config_file)


def with_paths(command):
    """Give a command ``paths``: ``--data``/``--config`` after the subcommand win over those before it."""
    @data_option
    @config_option
    @click.pass_context
    @functools.wraps(command)
    def wrapper(ctx, data, config_file, **kwargs):
        paths = Paths(data or str(ctx.obj.data_dir), config_file or (None if data else ctx.obj.config_path))
        return command(paths, **kwargs)
    return wrapper


# -- serve and status ---------------------------------------------------------------------

@main.command()
@click.option("--listen", multiple=True, metavar="ADDR", help="Address to listen on (repeatable) [default: all].")
@click.option("--port-offset", type=int, default=None, metavar="N", help="Add N to every port (10000 gives 10025, 10143, ...).")
@click.option("--tui", is_flag=True, help="Run the terminal UI in this process too.")
@with_paths
def serve(paths, listen, port_offset, tui):
    """Run the mail server (SMTP, POP3, IMAP) until SIGTERM or Ctrl-C."""
    config = paths.config(write_sample=True)
    server_overrides = {}
    if listen:
        server_overrides["listen"] = list(listen)
    if port_offset is not None:
        server_overrides["port_offset"] = port_offset
    if server_overrides:
        config = with_overrides(config, server=server_overrides)
    log_file = paths.data_dir / config.server.log_file if config.server.log_file else None
    setup_logging(config.server.log_level, log_file)
    server = Server(paths.data_dir, config)
    if not tui:
        server.install_signal_handlers()
    try:
        server.start()
    except (BindError, DataFolderInUse) as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:  # e.g. an unreadable certificate: say what, exit non-zero
        logging.getLogger("kotakpos").exception("start failed")
        raise click.ClickException(f"cannot start: {e}") from None
    if tui:
        from appliance.tui import run_tui
        try:
            status = run_tui(server.admin)
        finally:
            server.stop()
        if status:
            raise click.ClickException("the terminal UI failed (see above); the server has stopped")
        return
    server.serve_forever()


@main.command()
@with_paths
def tui(paths):
    """Administer a running server in the terminal UI (it reconnects if the server restarts)."""
    from appliance.tui import attach
    if attach(paths.data_dir / ADMIN_SOCKET):
        raise click.ClickException("the terminal UI failed (see above)")


@main.command()
@with_paths
def status(paths):
    """Show listeners, live sessions and counts of a running server."""
    try:
        client = AdminClient(paths.data_dir / ADMIN_SOCKET)
    except ServerNotRunning:
        click.echo(f"No Kotakpos server is running for {paths.data_dir}.")
        sys.exit(3)
    try:
        st = client.status()
        sessions = client.sessions()
    finally:
        client.close()
    click.echo(f"Kotakpos {st['version']} on {st['hostname']} (pid {st['pid']}), up {duration(st['uptime'])}")
    click.echo("Listeners:")
    for l in st["listeners"]:
        click.echo(f"  {l['name']:<11} {', '.join(l['addresses'])}  {l['state']}")
    by_proto = ", ".join(f"{k} {v}" for k, v in sorted(st["sessions_by_protocol"].items())) or "none"
    click.echo(f"Sessions: {st['sessions']} ({by_proto})")
    for s in sessions:
        click.echo(f"  #{s['id']:<5} {s['listener']:<10} {s['peer_ip']:<15} {s['user'] or '-':<25} "
                   f"{s['tls'] or 'plain':<8} {s['state']:<12} {duration(time.time() - s['started'])}")
    c = st["counts"]
    click.echo(f"Store: {c['domains']} domains, {c['users']} users, {c['messages']} messages, "
               f"{c['bytes'] / 1048576:.1f} MiB")
    click.echo(f"Queue: {st['queue']['depth']} entries" + (f", oldest {duration(time.time() - st['queue']['oldest'])}"
                                                          if st['queue']['oldest'] else ""))
    if st["today"]:
        click.echo("Today: " + ", ".join(f"{k} {v}" for k, v in sorted(st["today"].items())))
    click.echo(f"Blocked addresses: {st['blocked']}")
    click.echo(f"TLS certificate valid until {st['tls_expiry']}")
    acme = st.get("tls_acme")
    if acme and acme["last_error"]:
        kind = "a SELF-SIGNED certificate" if acme["self_signed"] else "the current certificate"
        click.echo(f"ACME: WARNING: no certificate from {acme['directory']}: {acme['last_error']}; serving {kind}")
    elif acme:
        click.echo(f"ACME: issued by {acme['issuer']}; renewal from {acme['renews_from']}")


# -- accounts ---------------------------------------------------------------------------

@main.group()
def domain():
    """Mail domains this server receives mail for."""


@domain.command("add")
@click.argument("name")
@with_paths
def domain_add(paths, name):
    with admin(paths) as api:
        click.echo(f"added domain {api.add_domain(name)}")


@domain.command("list")
@with_paths
def domain_list(paths):
    with admin(paths) as api:
        for name in api.domains():
            click.echo(name)


@domain.command("del")
@click.argument("name")
@with_paths
def domain_del(paths, name):
    with admin(paths) as api:
        api.delete_domain(name)
        click.echo(f"deleted domain {name}")


@main.group()
def user():
    """Mail users; the login name is the full address."""


@user.command("add")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--quota", type=int, default=0, metavar="BYTES", help="Mail storage quota (0 = unlimited).")
@with_paths
def user_add(paths, address, password_stdin, quota):
    password = read_password(password_stdin)
    with admin(paths) as api:
        created = api.add_user(address, password, quota)
        click.echo(f"added user {created['address']}")


@user.command("list")
@with_paths
def user_list(paths):
    with admin(paths) as api:
        for u in api.users():
            quota = f"{u['quota']} bytes" if u["quota"] else "unlimited"
            click.echo(f"{u['address']:<40} used {u['used']} bytes, quota {quota}")


@user.command("del")
@click.argument("address")
@with_paths
def user_del(paths, address):
    with admin(paths) as api:
        api.delete_user(address)
        click.echo(f"deleted user {address} and their mail")


@user.command("passwd")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_paths
def user_passwd(paths, address, password_stdin):
    password = read_password(password_stdin)
    with admin(paths) as api:
        api.set_password(address, password)
        click.echo(f"changed the password of {address}")


@user.command("quota")
@click.argument("address")
@click.argument("quota", type=int)
@with_paths
def user_quota(paths, address, quota):
    """Set ADDRESS's quota in bytes (0 = unlimited)."""
    with admin(paths) as api:
        api.set_quota(address, quota)
        click.echo(f"quota of {address} is now {quota or 'unlimited'}" + (" bytes" if quota else ""))


@main.group()
def alias():
    """Aliases, distribution lists (several targets) and catch-alls (@domain)."""


@alias.command("add")
@click.argument("alias_address", metavar="ALIAS")
@click.argument("targets", nargs=-1, required=True)
@with_paths
def alias_add(paths, alias_address, targets):
    with admin(paths) as api:
        api.add_alias(alias_address, list(targets))
        click.echo(f"{alias_address} -> {', '.join(targets)}")


@alias.command("list")
@with_paths
def alias_list(paths):
    with admin(paths) as api:
        for name, targets in api.aliases().items():
            click.echo(f"{name} -> {', '.join(targets)}")


@alias.command("del")
@click.argument("alias_address", metavar="ALIAS")
@click.argument("targets", nargs=-1)
@with_paths
def alias_del(paths, alias_address, targets):
    """Delete ALIAS, or only the given TARGETS from it."""
    with admin(paths) as api:
        api.delete_alias(alias_address, list(targets) or None)
        click.echo(f"deleted alias {alias_address}" + (f" -> {', '.join(targets)}" if targets else ""))


# -- backup -----------------------------------------------------------------------------

class _BackupGroup(click.Group):
    """``kotakpos backup FILE`` is ``kotakpos backup now FILE``; other subcommands as usual."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["now", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_BackupGroup)
def backup():
    """Snapshots of the store: ``backup FILE`` writes one now; ``backup verify FILE`` checks one."""


@backup.command("now")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@with_paths
def backup_now(paths, file):
    """Write a consistent copy of the store to FILE (safe while the server runs)."""
    source = paths.data_dir / DB_NAME
    if not source.exists():
        raise click.ClickException(f"there is no store in {paths.data_dir}")
    backup_database(source, file)
    click.echo(f"backed up {source} to {file}")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", "address", metavar="ADDRESS", help="Put back only this user's mail, into the live store.")
@click.option("--folder", metavar="NAME", help="With --user: only this folder.")
@with_paths
def restore(paths, file, address, folder):
    """Replace the store with the backup FILE (the server must be stopped), or with --user
    put one user's mail (or one folder) back from it while the server runs."""
    if address is not None:
        from appliance.cli.migrate import restore_user
        return restore_user(paths, file, address, folder)
    if folder is not None:
        raise click.UsageError("--folder needs --user")
    if folder_in_use(paths.data_dir):
        raise click.ClickException(f"a Kotakpos server is using {paths.data_dir}; stop it before restoring")
    try:
        conn = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        conn.close()
    except sqlite3.DatabaseError as e:
        raise click.ClickException(f"{file} is not a Kotakpos backup: {e}") from None
    if ok != "ok" or not {"users", "messages", "blobs"} <= tables:
        raise click.ClickException(f"{file} is not a usable Kotakpos backup (integrity check: {ok})")
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    target = paths.data_dir / DB_NAME
    if target.exists():
        kept = target.with_name(f"{DB_NAME}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}")
        backup_database(target, kept)
        click.echo(f"kept the previous store as {kept}")
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    for derived in paths.data_dir.glob(f"{target.stem}-search.sqlite*"):  # rebuilt from the store
        derived.unlink()
    shutil.copyfile(file, str(target) + ".partial")
    Path(str(target) + ".partial").replace(target)
    click.echo(f"restored {file} into {paths.data_dir}")


# -- relay queue and DNS ------------------------------------------------------------------

@main.group()
def queue():
    """The relay queue: mail waiting to go to other servers."""


@queue.command("list")
@with_paths
def queue_list(paths):
    with admin(paths) as api:
        entries = api.queue()
    if not entries:
        click.echo("The queue is empty.")
        return
    now = time.time()
    for e in entries:
        due = "now" if e["next_attempt"] <= now else "in " + duration(e["next_attempt"] - now)
        click.echo(f"{e['id']:>6} {e['state']:<10} {duration(now - e['created']):>7} {e['size']:>9}  "
                   f"<{e['sender']}> -> <{e['recipient']}>  tries {e['attempts']}, next {due}")
        if e["last_error"]:
            click.echo(f"{'':>6} {e['last_error']}")


@queue.command("show")
@click.argument("queue_id", type=int, metavar="ID")
@with_paths
def queue_show(paths, queue_id):
    with admin(paths) as api:
        e = api.queue_entry(queue_id)
    for key in ("id", "state", "sender", "recipient", "domain", "size", "attempts", "last_error", "dsn"):
        click.echo(f"{key + ':':<13} {e[key]}")
    for key in ("created", "next_attempt"):
        click.echo(f"{key + ':':<13} {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e[key]))}")


def _queue_action(name: str, verb: str, help_text: str):
    """``kotakpos queue NAME ID... | --all``: one admin call on the given (or every) entry."""
    @queue.command(name, help=help_text)
    @click.argument("ids", nargs=-1, type=int, metavar="ID...")
    @click.option("--all", "every", is_flag=True, help="Every entry in the queue.")
    @with_paths
    def command(paths, ids, every):
        if bool(ids) == every:
            raise click.UsageError("give entry IDs or --all")
        with admin(paths) as api:
            chosen = [e["id"] for e in api.queue()] if every else list(ids)
            if name == "bounce":
                done = api.queue_bounce(chosen, paths.config().server.hostname)
            else:
                done = getattr(api, f"queue_{name}")(chosen)
        click.echo(f"{verb} {done} of {len(chosen)} entr{'y' if len(chosen) == 1 else 'ies'}")
    return command


_queue_action("retry", "retrying", "Make entries due now (held entries stay held).")
_queue_action("hold", "held", "Keep entries in the queue without trying them.")
_queue_action("release", "released", "Let held entries be tried again.")
_queue_action("delete", "deleted", "Remove entries without telling anyone.")
_queue_action("bounce", "bounced", "Give up on entries now; each sender gets a failure notice.")


@main.command()
@click.argument("domain_name", metavar="DOMAIN")
@with_paths
def dns(paths, domain_name):
    """Print the DNS records to publish for DOMAIN (MX, SPF, DKIM, DMARC; extras marked optional)."""
    hostname = paths.config().server.hostname
    with admin(paths) as api:
        records = api.dns_records(domain_name, hostname)
    for r in records:
        if r["optional"] and not any(p["optional"] for p in records[:records.index(r)]):
            click.echo("; optional: TLS reports (RFC 8460), MTA-STS (RFC 8461, also needs the policy at "
                       f"https://mta-sts.{domain_name}/.well-known/mta-sts.txt), and client auto-setup "
                       "(RFC 6186 SRV; the CNAMEs must reach the [web] listener)")
        value = r["value"]
        if r["type"] == "TXT":
            # A TXT string holds at most 255 bytes; longer values are split into several.
            value = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
        click.echo(f"{r['name']}.\tIN\t{r['type']}\t{value}")


from appliance.cli import filters as _filters  # noqa: E402,F401  (registers quarantine, rules, receipts)

from appliance.cli import migrate as _migrate  # noqa: E402,F401  (registers import, export)

from appliance.cli import check as _check  # noqa: E402,F401  (registers check)
