"""The DNS names that let mail programs find this server by themselves.

RFC 6186 SRV records name the IMAP, POP3 and submission endpoints (RFC 8314 adds the
implicit-TLS ones), RFC 5804 §1.8 the ManageSieve one; the autoconfig, autodiscover and
mta-sts host names must reach the web listener ([web] enabled) for Thunderbird, Outlook and
MTA-STS senders.
"""

from __future__ import annotations

# (service label, listener) in the order a client should prefer them: implicit TLS first.
SRV_SERVICES = (("_submissions._tcp", "smtps"), ("_submission._tcp", "submission"), ("_imaps._tcp", "imaps"),
                ("_imap._tcp", "imap"), ("_pop3s._tcp", "pop3s"), ("_pop3._tcp", "pop3"),
                ("_sieve._tcp", "managesieve"))


def client_setup_records(domain: str, hostname: str, ports: dict[str, int], https_port: int = 443) -> list[dict]:
    """Records in the admin API's shape: {"name", "type", "value", "optional": True}."""
    host = hostname.rstrip(".") + "."
    records = [{"name": f"{label}.{domain}", "type": "SRV", "value": f"0 1 {ports[listener]} {host}", "optional": True}
               for label, listener in SRV_SERVICES]
    records.append({"name": f"_autodiscover._tcp.{domain}", "type": "SRV", "value": f"0 1 {https_port} {host}",
                    "optional": True})
    records += [{"name": f"{label}.{domain}", "type": "CNAME", "value": host, "optional": True}
                for label in ("autoconfig", "autodiscover", "mta-sts")]
    return records
