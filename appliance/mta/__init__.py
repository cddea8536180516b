"""The MTA: routing, the durable relay queue and outbound delivery.

Inbound, ``router`` decides per recipient whether mail stays here or is relayed, and
writes local copies and queue rows in one store transaction. Outbound, ``queue`` runs
the relay queue: it claims due rows from the store, groups them by destination so one
connection carries every message for it, and records each outcome in the same
transaction that writes any notice it causes. The outbound steps are split by subject:
``transport`` (where a domain's mail goes: static route, smarthost or MX), ``deliver``
(the SMTP client), ``dsn`` (delivery status notifications), ``dkim`` (signing) and
``srs`` (sender rewriting for forwarded mail).
"""
