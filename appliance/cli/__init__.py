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
from appliance.config import ConfigError, hostname_warning, with_overrides
from appliance.net import BindError
from appliance.server import (ADMIN_SOCKET, DataFolderInUse, Server, folder_in_use, keep_files_private, load_config,
                              open_store, resolve_paths, setup_logging)
from appliance.store import DB_NAME, backup_database
from appliance.supervisor import StartFailed, Supervisor, pin_to_one_cpu, worker_count
from appliance.admin.sizes import parse_size
from appliance.tui.models import WorkerLoad, duration, size, worker_cells


class Paths:
    def __init__(self, data: str | None, config: str | None):
        self.data_dir, self.config_path = resolve_paths(data, config)

    def config(self, write_sample: bool = False):
        try:
            return load_config(self.data_dir, self.config_path, write_sample=write_sample)
        except ConfigError as e:
            raise click.ClickException(str(e)) from None

    def require_store(self, create: bool = False) -> None:
        """Refuse to work on a folder without a store, unless the command may make one
        (``domain add``, ``user add``: the first steps), and then say where it goes."""
        if (self.data_dir / DB_NAME).exists():
            return
        if not create:
            raise click.ClickException(
                f"there is no Kotakpos store in {self.data_dir}; run this in the folder that holds "
                f"the data folder, or name it with --data DIR or KOTAKPOS_DATA")
        click.echo(f"creating a new Kotakpos store in {self.data_dir}", err=True)


@contextmanager
def admin(paths: Paths, create: bool = False):
    """The running server's admin API, or an in-process one over the store (which only the
    commands that set a server up may ``create``)."""
    try:
        client = AdminClient(paths.data_dir / ADMIN_SOCKET)
    except ServerNotRunning:
        paths.config()  # refuse a broken config file here too
        paths.require_store(create)
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


class SizeType(click.ParamType):
    """A size as people type it: 3000000, 500M, 1.5G (the TUI's forms read the same)."""

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


SIZE = SizeType()


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
    keep_files_private()  # backups, exports and a new store hold mail
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
    if tui:
        require_terminal()
    server_overrides = {}
    if listen:
        server_overrides["listen"] = list(listen)
    if port_offset is not None:
        server_overrides["port_offset"] = port_offset

    def read_config():
        """The file's settings with the command line's over them (again on each reload)."""
        config = load_config(paths.data_dir, paths.config_path)
        return with_overrides(config, server=server_overrides) if server_overrides else config

    config = with_overrides(paths.config(write_sample=True), server=server_overrides)
    log_file = paths.data_dir / config.server.log_file if config.server.log_file else None
    setup_logging(config.server.log_level, log_file)
    if worker_count(config) > 1:
        # With --tui it runs in a process of its own, over the admin socket, as `kotakpos tui` does.
        from appliance.tui import attach
        run_tui = (lambda: attach(paths.data_dir / ADMIN_SOCKET)) if tui else None
        try:
            status = Supervisor(paths.data_dir, config, reread_config=read_config, tui=run_tui).run()
        except (BindError, DataFolderInUse, StartFailed) as e:
            raise click.ClickException(str(e)) from None
        except Exception as e:
            logging.getLogger("kotakpos").exception("start failed")
            raise click.ClickException(f"cannot start: {e}") from None
        if status:
            raise click.ClickException("the terminal UI failed (see above); the server has stopped")
        return
    if config.server.pin_workers:
        pin_to_one_cpu(0)  # before the server starts a thread: they all stay on that CPU
    server = Server(paths.data_dir, config, reread_config=read_config)
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


def require_terminal() -> None:
    """Refuse to start the TUI without a terminal: on a pipe Textual would run unseen, spin
    and never read the key that quits it."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise click.ClickException("the terminal UI needs a terminal: run it from an interactive shell "
                                   "(over ssh: ssh -t)")


@main.command()
@with_paths
def tui(paths):
    """Administer a running server in the terminal UI (it reconnects if the server restarts)."""
    require_terminal()
    from appliance.tui import attach
    if attach(paths.data_dir / ADMIN_SOCKET):
        raise click.ClickException("the terminal UI failed (see above)")


@main.command()
@with_paths
def status(paths):
    """Show listeners, the worker processes, live sessions and counts of a running server."""
    try:
        client = AdminClient(paths.data_dir / ADMIN_SOCKET)
    except ServerNotRunning:
        click.echo(f"No Kotakpos server is running for {paths.data_dir}.")
        sys.exit(3)
    try:
        st = client.status()
        workers = client.workers()
    finally:
        client.close()
    # each worker process lists its own sessions ([server] workers)
    sessions = [s for w in workers for s in w.get("session_list", [])]
    click.echo(f"Kotakpos {st['version']} on {st['hostname']} (pid {st['pid']}), up {duration(st['uptime'])}")
    click.echo("Listeners:")
    for l in st["listeners"]:
        click.echo(f"  {l['name']:<11} {', '.join(l['addresses'])}  {l['state']}")
    click.echo(f"Workers: {len(workers)}" if len(workers) > 1 else "Server process:")
    now = time.time()
    for w in workers:
        if "pid" not in w:
            click.echo(f"  worker {w['index']}: not answering (restarting?)")
            continue
        cells = worker_cells(w, WorkerLoad().percent(w, now), now)
        ended = w["last_exit"]
        click.echo(f"  worker {w['index']}  pid {w['pid']:<7} up {cells['up']:<7} {w['sessions']} sessions"
                   + (f" ({cells['sessions']})" if w["sessions"] else "")
                   + f", cpu {cells['cpu_time']} ({cells['cpu']} of a core on average), rss {size(w['rss'])} "
                   f"pss {size(w['pss'])}, restarts {w['restarts']}"
                   + (f", last exit: {ended['reason']}, {duration(now - ended['at'])} ago" if ended else ""))
    by_protocol: dict[str, int] = {}
    for s in sessions:
        by_protocol[s["protocol"]] = by_protocol.get(s["protocol"], 0) + 1
    by_proto = ", ".join(f"{k} {v}" for k, v in sorted(by_protocol.items())) or "none"
    click.echo(f"Sessions: {len(sessions)} ({by_proto})")
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
    """Receive mail for the domain NAME (creates the store on first use)."""
    with admin(paths, create=True) as api:
        click.echo(f"added domain {api.add_domain(name)}")


@domain.command("list")
@with_paths
def domain_list(paths):
    """List the local domains."""
    with admin(paths) as api:
        for name in api.domains():
            click.echo(name)


@domain.command("del")
@click.argument("name")
@with_paths
def domain_del(paths, name):
    """Stop receiving mail for NAME (its users must be deleted first)."""
    with admin(paths) as api:
        api.delete_domain(name)
        click.echo(f"deleted domain {name}")


@main.group()
def user():
    """Mail users; the login name is the full address."""


@user.command("add")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--quota", type=SIZE, default=0, metavar="SIZE",
              help="Mail storage quota: bytes, or with K, M or G (500M, 2G); 0 = unlimited.")
@with_paths
def user_add(paths, address, password_stdin, quota):
    """Add the user ADDRESS (its domain must be added first); asks for the password twice."""
    password = read_password(password_stdin)
    with admin(paths, create=True) as api:
        created = api.add_user(address, password, quota)
        click.echo(f"added user {created['address']}")


@user.command("list")
@with_paths
def user_list(paths):
    """List the users with the mail each keeps and their quota."""
    with admin(paths) as api:
        for u in api.users():
            quota = f"{u['quota']} bytes" if u["quota"] else "unlimited"
            click.echo(f"{u['address']:<40} used {u['used']} bytes, quota {quota}")


@user.command("del")
@click.argument("address")
@with_paths
def user_del(paths, address):
    """Delete the user ADDRESS and all their mail."""
    with admin(paths) as api:
        api.delete_user(address)
        click.echo(f"deleted user {address} and their mail")


@user.command("passwd")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_paths
def user_passwd(paths, address, password_stdin):
    """Set a new password for ADDRESS (asks twice, or reads --password-stdin)."""
    password = read_password(password_stdin)
    with admin(paths) as api:
        api.set_password(address, password)
        click.echo(f"changed the password of {address}")


@user.command("quota")
@click.argument("address")
@click.argument("quota", type=SIZE)
@with_paths
def user_quota(paths, address, quota):
    """Set ADDRESS's quota: bytes, or with K, M or G (500M, 1.5G, 2G); 0 = unlimited."""
    with admin(paths) as api:
        api.set_quota(address, quota)
        click.echo(f"quota of {address} is now {f'{quota} bytes ({size(quota)})' if quota else 'unlimited'}")


@main.group()
def alias():
    """Aliases, distribution lists (several targets) and catch-alls (@domain)."""


@alias.command("add")
@click.argument("alias_address", metavar="ALIAS")
@click.argument("targets", nargs=-1, required=True)
@with_paths
def alias_add(paths, alias_address, targets):
    """Send mail for ALIAS to TARGETS (users, aliases, or addresses elsewhere);
    ALIAS @domain catches every unknown address of the domain."""
    with admin(paths) as api:
        api.add_alias(alias_address, list(targets))
        click.echo(f"{alias_address} -> {', '.join(targets)}")


@alias.command("list")
@with_paths
def alias_list(paths):
    """List aliases with their targets."""
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
    """Snapshots of the store.

    \b
    kotakpos backup FILE           write one now (the same as: backup now FILE)
    kotakpos backup verify FILE    check one
    """


@backup.command("now")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@with_paths
def backup_now(paths, file, force):
    """Write a consistent copy of the store to FILE (safe while the server runs)."""
    paths.require_store()
    source = paths.data_dir / DB_NAME
    if file.exists() and not force:
        raise click.ClickException(f"{file} exists already; choose another name, or overwrite it with --force")
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
    """List the relay queue: id, state, age, size, sender, recipient, next try."""
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


ID_HELP = ("An ID is a queue id (the first column of `queue list`) or the message id of the SMTP reply"
           " and the log (\"queued as 02783ECB9660A699\"), which stands for each of its entries.")


def _queue_ids(api, names) -> tuple[list[int], list[str]]:
    """The entries the IDs name, and the IDs that name none."""
    found, unknown = [], []
    for name in names:
        ids = api.queue_ids(name)
        found += [i for i in ids if i not in found]
        if not ids:
            unknown.append(name)
    return found, unknown


@queue.command("show", help="Show every detail of queue entries.\n\n" + ID_HELP)
@click.argument("names", nargs=-1, required=True, metavar="ID...")
@with_paths
def queue_show(paths, names):
    with admin(paths) as api:
        ids, unknown = _queue_ids(api, names)
        entries = [api.queue_entry(i) for i in ids]
    for n, e in enumerate(entries):
        if n:
            click.echo()
        for key in ("id", "state", "sender", "recipient", "domain", "size", "attempts", "last_error", "dsn"):
            click.echo(f"{key + ':':<13} {e[key]}")
        for key in ("created", "next_attempt"):
            click.echo(f"{key + ':':<13} {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e[key]))}")
    _refuse_unknown(unknown)


def _refuse_unknown(unknown: list[str]) -> None:
    if unknown:
        raise click.ClickException(f"no queue entry {', '.join(unknown)} (see `kotakpos queue list`)")


def _queue_action(name: str, verb: str, participle: str, help_text: str):
    """``kotakpos queue NAME ID... | --all``: one admin call on the given (or every) entry."""
    @queue.command(name, help=help_text + "\n\n" + ID_HELP)
    @click.argument("names", nargs=-1, metavar="ID...")
    @click.option("--all", "every", is_flag=True, help="Every entry in the queue.")
    @with_paths
    def command(paths, names, every):
        if bool(names) == every:
            raise click.UsageError("give entry IDs or --all")
        with admin(paths) as api:
            chosen, unknown = ([e["id"] for e in api.queue()], []) if every else _queue_ids(api, names)
            if not chosen:
                done = 0
            elif name == "bounce":
                done = api.queue_bounce(chosen, paths.config().server.hostname)
            else:
                done = getattr(api, f"queue_{name}")(chosen)
        if chosen or every:
            click.echo(f"{verb} {done} of {len(chosen)} entr{'y' if len(chosen) == 1 else 'ies'}")
        _refuse_unknown(unknown)
        if done < len(chosen) and not every:
            raise click.ClickException(f"{len(chosen) - done} of them could not be {participle} now")
    return command


_queue_action("retry", "retrying", "retried", "Make entries due now (held entries stay held).")
_queue_action("hold", "held", "held", "Keep entries in the queue without trying them.")
_queue_action("release", "released", "released", "Let held entries be tried again.")
_queue_action("delete", "deleted", "deleted (being delivered right now)", "Remove entries without telling anyone.")
_queue_action("bounce", "bounced", "bounced (being delivered right now)", "Give up on entries now; each sender gets a failure notice.")


@main.command()
@click.argument("domain_name", metavar="DOMAIN")
@with_paths
def dns(paths, domain_name):
    """Print the DNS records to publish for DOMAIN (MX, SPF, DKIM, DMARC; extras marked optional)."""
    hostname = paths.config().server.hostname
    with admin(paths) as api:
        records = api.dns_records(domain_name, hostname)
    warning = hostname_warning(hostname)
    if warning:
        click.echo(f"warning: {warning}", err=True)  # the MX below names it
    for line in zone_lines(domain_name, records):
        click.echo(line)


def zone_lines(domain_name: str, records: list[dict]) -> list[str]:
    """The records of ``api.dns_records`` as zone-file lines, the optional ones after a comment."""
    lines = []
    for r in records:
        if r["optional"] and not any(p["optional"] for p in records[:records.index(r)]):
            lines.append("; optional: TLS reports (RFC 8460), MTA-STS (RFC 8461, also needs the policy at "
                         f"https://mta-sts.{domain_name}/.well-known/mta-sts.txt), and client auto-setup "
                         "(RFC 6186 SRV; the CNAMEs must reach the [web] listener)")
        value = r["value"]
        if r["type"] == "TXT":
            # A TXT string holds at most 255 bytes; longer values are split into several.
            value = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
        lines.append(f"{r['name']}.\tIN\t{r['type']}\t{value}")
    return lines


from appliance.cli import filters as _filters  # noqa: E402,F401  (registers quarantine, rules, receipts)

from appliance.cli import migrate as _migrate  # noqa: E402,F401  (registers import, export)

from appliance.cli import check as _check  # noqa: E402,F401  (registers check)
