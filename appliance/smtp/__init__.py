"""The SMTP server: inbound MX on 25, submission on 587, SMTPS on 465 (RFC 5321).

The package has the four modules every protocol package has: ``parse`` turns a
command line into a command object (no sockets, no store), ``replies`` names each
reply once with its enhanced status code and holds the one function that formats
replies for the wire, ``errors`` holds the exceptions that know their reply, and
``session`` is the state machine. Routing and delivery are not decided here: an
accepted message goes to ``appliance.mta.router``.
"""
