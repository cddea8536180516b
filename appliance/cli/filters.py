"""``kotakpos quarantine``, ``kotakpos rules`` and ``kotakpos receipts``: the MDA's commands.

Thin: each command is one admin API call (the running server's, or an in-process one
over the store) and prints its answer.
"""

from __future__ import annotations

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


@main.command()
@click.argument("address")
@click.argument("action", type=click.Choice(["get", "set", "check", "list", "show"]))
@click.argument("target", required=False, metavar="[FILE|NAME]")
@with_paths
def rules(paths, address, action, target):
    """ADDRESS's Sieve scripts. get, set and check act on the active script (set and check read
    FILE, or standard input). list names every script delivery may run: the account rules
    (the account page's out-of-office, forwarding and filters), run first, then each of
    the user's own scripts (over ManageSieve or the account page), * marking the active one.
    show NAME prints that script; show alone prints the account rules and the active
    script, in the order delivery runs them."""
    with admin(paths) as api:
        if action == "get":
            click.echo(api.rules_get(address), nl=False)
            return
        if action == "list":
            _list_scripts(address, api.rules_scripts(address))
            return
        if action == "show":
            if target:
                click.echo(api.rules_get(address, target), nl=False)
                return
            _show_delivery_scripts(api.rules_scripts(address), api.rules_get(address))
            return
        try:
            with click.open_file(target or "-") as file:
                script = file.read()
        except OSError as e:
            raise click.ClickException(f"cannot read {target}: {e.strerror}") from None
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


ACCOUNT_RULES = "(account rules)"   # how list and show name the account page's script


def _list_scripts(address: str, scripts: dict) -> None:
    if not scripts["account_rules"] and not scripts["scripts"]:
        click.echo(f"{address} has no Sieve scripts.")
        return
    if scripts["account_rules"]:
        click.echo(f"+ {ACCOUNT_RULES:<30} {len(scripts['account_rules'].encode()):>8} runs first")
    for s in scripts["scripts"]:
        click.echo(f"{'*' if s['active'] else ' '} {s['name']:<30} {s['size']:>8} {_when(s['updated'])}")


def _show_delivery_scripts(scripts: dict, active_text: str) -> None:
    active = next((s["name"] for s in scripts["scripts"] if s["active"]), None)
    parts = []
    if scripts["account_rules"]:
        parts.append((f"{ACCOUNT_RULES}, run first", scripts["account_rules"]))
    if active is not None:
        parts.append((f"the active script {active!r}", active_text))
    if not parts:
        click.echo("# no script runs: every message goes to INBOX (or Junk, by the spam filter)")
    for title, text in parts:
        click.echo(f"# ---- {title} ----")
        click.echo(text if text.endswith("\n") else text + "\n", nl=False)


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
