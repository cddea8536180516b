"""Greylisting (RFC 6647), off by default: a first message from an unknown (client network,
sender, recipient) gets 451 4.7.1 at the end of DATA; a real MTA retries after a while and
is let through from then on, while most spamware never retries. Mail from logged-in users
and trusted networks is never delayed.
"""

from __future__ import annotations

import ipaddress

from appliance.mda.filter import ACCEPT, Check, Filter, Incoming, Verdict

DEFERRED = (451, "4.7.1", "Greylisted: please try again later")


def network(ip: str) -> str:
    """The client's /24 (IPv4) or /64 (IPv6): big senders retry from another address of a pool."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class GreylistFilter(Filter):
    name = "greylist"
    runs_locally = True  # the store only

    def __init__(self, ctx):
        self.ctx = ctx

    def check(self, msg: Incoming) -> Check:
        return GreylistCheck(self, msg)


class GreylistCheck(Check):
    def __init__(self, f: GreylistFilter, msg: Incoming):
        super().__init__(msg)
        self.f = f

    def check_connection(self) -> Verdict:
        msg, cfg = self.msg, self.f.ctx.config.mda
        if msg.internal or not msg.envelope.client_ip:
            return ACCEPT
        recipients = [r.route.address for r in msg.envelope.recipients if r.route.users]
        if self.f.ctx.store.greylist_pass(network(msg.envelope.client_ip), msg.sender, recipients,
                                          cfg.greylist_delay, cfg.greylist_window, cfg.greylist_keep):
            return ACCEPT
        self.f.ctx.count("mda.greylisted")
        return Verdict(reject=DEFERRED, reason=f"greylisted {network(msg.envelope.client_ip)} <{msg.sender}>")
