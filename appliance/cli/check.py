"""``kotakpos check [DOMAIN]...``: the deliverability self-check (logic in appliance.dnscheck)."""

from __future__ import annotations

import sys

import click

from appliance.cli import admin, main, with_paths
from appliance.dnscheck.checks import FAIL, DnsError, Resolver, check_domain, check_reverse


@main.command()
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@with_paths
def check(paths, domains):
    """Check the DNS of DOMAIN (default: every local domain) against what Kotakpos needs:
    MX, SPF, DKIM, DMARC, MTA-STS and the reverse DNS of [check] public_address.
    Prints the record to publish for each problem; exits 1 when something is wrong."""
    config = paths.config()
    hostname = config.server.hostname
    resolver = _resolver(config)
    if not domains:
        with admin(paths) as api:
            domains = api.domains()
        if not domains:
            raise click.ClickException("there are no local domains; name one: kotakpos check DOMAIN")
    failed = False
    for domain in domains:
        domain = domain.lower().rstrip(".")
        click.echo(domain)
        with admin(paths) as api:
            keys = [tuple(pair) for pair in api.dkim_records(domain)]
        failed |= _show(check_domain(resolver, domain, hostname, config.check.public_address, keys))
    if config.check.public_address:
        click.echo(f"{hostname} ({config.check.public_address})")
        try:
            failed |= _show([check_reverse(resolver, config.check.public_address, hostname)])
        except DnsError as e:
            click.echo(f"  {FAIL:<5} {'PTR':<8} {e}")
            failed = True
    if failed:
        click.echo("Some records are missing or wrong; publish the records shown, then run the check again.")
        sys.exit(1)
    click.echo("All checks passed.")


def _show(findings) -> bool:
    """Print findings; True when one of them failed."""
    for f in findings:
        click.echo(f"  {f.status:<5} {f.aspect:<8} {f.detail}")
        for line in f.fix:
            click.echo(f"{'':16}publish: {line}" if "\t" in line else f"{'':16}{line}")
    return any(f.status == FAIL for f in findings)


def _resolver(config) -> Resolver:
    try:
        return Resolver(config.dns.resolver, config.dns.timeout)
    except DnsError as e:
        raise click.ClickException(str(e)) from None
