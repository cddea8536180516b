"""``kotakpos check``: will mail from and to this server's domains be trusted?

Big mailbox providers judge a small server by its DNS: an MX that names it, SPF that
allows it, DKIM keys that match the ones it signs with, a DMARC policy, a reverse DNS
name that matches its host name, and (optionally) MTA-STS. ``checks`` asks DNS, compares
each answer with what Kotakpos expects and, for every mismatch, says the exact record
to publish. Pure comparison of answers; the questions go through ``Resolver``.
"""
