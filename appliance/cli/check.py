"""``kotakpos check [DOMAIN]...``: the deliverability self-check (logic in appliance.dnscheck)."""

from __future__ import annotations

import sys

import click

from appliance.cli import admin, main, with_paths, zone_lines
from appliance.dnscheck.checks import FAIL, UNREACHABLE, DnsError, Resolver, check_domain, check_reverse
from appliance.server import local_warnings


@main.command()
@click.argument("domains", nargs=-1, metavar="[DOMAIN]...")
@with_paths
def check(paths, domains):
    """Check this server (its hostname, who may read its mail data) and the DNS of DOMAIN
    (default: every local domain) against what Kotakpos needs: MX, SPF, DKIM, DMARC, MTA-STS
    and the reverse DNS of [check] public_address.
    Prints the record to publish or the command to run for each problem; exits 1 when
    something is wrong."""
    config = paths.config()
    hostname = config.server.hostname
    click.echo(f"{hostname} (data folder {paths.data_dir})")
    warnings = local_warnings(paths.data_dir, config)
    for warning in warnings:
        click.echo(f"  {FAIL:<5} {'local':<8} {warning}")
    if not warnings:
        click.echo(f"  {'ok':<5} {'local':<8} a fully qualified hostname; the mail data is private")
    failed = bool(warnings)
    resolver = _resolver(config)
    if not domains:
        with admin(paths) as api:
            domains = api.domains()
        if not domains:
            raise click.ClickException("there are no local domains; name one: kotakpos check DOMAIN")
    unreachable = False
    for domain in domains:
        domain = domain.lower().rstrip(".")
        click.echo(domain)
        with admin(paths) as api:
            keys = [tuple(pair) for pair in api.dkim_records(domain)]
            findings = check_domain(resolver, domain, hostname, config.check.public_address, keys)
            failed |= _show(findings)
            if any(f.aspect == UNREACHABLE for f in findings):
                # Nothing could be compared: show everything to publish, as `kotakpos dns` does.
                unreachable = True
                click.echo(f"{'':16}the records to publish for {domain} (`kotakpos dns {domain}`):")
                for line in zone_lines(domain, api.dns_records(domain, hostname)):
                    click.echo(f"{'':16}{line}")
    if config.check.public_address:
        click.echo(f"{hostname} ({config.check.public_address})")
        try:
            failed |= _show([check_reverse(resolver, config.check.public_address, hostname)])
        except DnsError as e:
            click.echo(f"  {FAIL:<5} {'PTR':<8} {e}")
            failed = True
    if unreachable:
        click.echo("DNS could not be reached: check [dns] resolver and the network, then run the check again. "
                   "Publish the records shown meanwhile.")
        sys.exit(1)
    if failed:
        click.echo("Some things are missing or wrong; fix them as shown, then run the check again.")
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
