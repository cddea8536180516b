"""``kotakpos quarantine``, ``kotakpos rules`` and ``kotakpos receipts``: the MDA's commands.

Thin: each command is one admin API call (the running server's, or an in-process one
over the store) and prints its answer.
"""

from __future__ import annotations

import sys
import time

import click

from appliance.cli import admin, main, with_paths


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


@main.group()
def quarantine():
    """Messages held back by the filters (see [mda] virus_action)."""


@quarantine.command("list")
@with_paths
def quarantine_list(paths):
    """List the messages held in quarantine."""
    with admin(paths) as api:
        held = api.quarantine_list()
    if not held:
        click.echo("The quarantine is empty.")
    for q in held:
        click.echo(f"{q['id']:>6} {_when(q['created'])} {q['size']:>9}  <{q['sender']}> -> "
                   f"{', '.join(q['recipients']) or '-'}  {q['subject']!r}")
        click.echo(f"{'':>6} {q['reason']}")


@quarantine.command("show")
@click.argument("quarantine_id", type=int, metavar="ID")
@with_paths
def quarantine_show(paths, quarantine_id):
    """Show a held message with why it was held."""
    with admin(paths) as api:
        q = api.quarantine_show(quarantine_id)
    click.echo(f"Reason:     {q['reason']}\nSender:     <{q['sender']}>\nRecipients: {', '.join(q['recipients'])}\n"
               f"Held since: {_when(q['created'])}\n")
    click.echo(q["message"])


@quarantine.command("release")
@click.argument("quarantine_id", type=int, metavar="ID")
@with_paths
def quarantine_release(paths, quarantine_id):
    """Deliver a held message to its recipients' INBOX."""
    with admin(paths) as api:
        delivered = api.quarantine_release(quarantine_id)
    click.echo(f"released {quarantine_id} to {', '.join(delivered)}")


@quarantine.command("delete")
@click.argument("quarantine_id", type=int, metavar="ID")
@with_paths
def quarantine_delete(paths, quarantine_id):
    """Delete a held message for good."""
    with admin(paths) as api:
        api.quarantine_delete(quarantine_id)
    click.echo(f"deleted {quarantine_id}")


def _script(file) -> str:
    return (file or sys.stdin).read()


@main.command()
@click.argument("address")
@click.argument("action", type=click.Choice(["get", "set", "check"]))
@click.argument("file", type=click.File("r"), required=False)
@with_paths
def rules(paths, address, action, file):
    """Show, store or check ADDRESS's Sieve rules (set/check read FILE or standard input)."""
    with admin(paths) as api:
        if action == "get":
            click.echo(api.rules_get(address), nl=False)
            return
        script = _script(file)
        if action == "check":
            result = api.rules_check(script, address)
            if not result["ok"]:
                raise click.ClickException(f"line {result['line']}: {result['error']}")
            for w in result["warnings"]:
                click.echo(f"warning: line {w['line']}: {w['warning']}", err=True)
            click.echo("the script is valid")
            return
        api.rules_set(address, script)
    click.echo(f"stored the rules of {address}")


@main.command()
@click.argument("address")
@click.option("--policy", type=click.Choice(["client", "auto", "never"]),
              help="Set the read-receipt policy: the client asks, the server sends on first read, or never.")
@with_paths
def receipts(paths, address, policy):
    """The receipt ledger of ADDRESS: delivery and read receipts of sent mail, requests received."""
    with admin(paths) as api:
        if policy:
            api.receipts_policy(address, policy)
        ledger = api.receipts(address)
    click.echo(f"Read-receipt policy: {ledger['policy']}")
    click.echo("Sent mail that asked for receipts:" if ledger["sent"] else "No sent mail asked for receipts.")
    for r in ledger["sent"]:
        click.echo(f"  {_when(r['sent'])} {r['recipient']:<30} delivery: {r['delivery'] or '-':<10} "
                   f"read: {r['display'] or '-':<10} {r['subject']!r}")
    if ledger["requested"]:
        click.echo("Received mail that asked for a read receipt:")
    for r in ledger["requested"]:
        click.echo(f"  {_when(r['received'])} {r['from']:<30} {r['state']:<8} {r['subject']!r}")
