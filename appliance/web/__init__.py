"""The optional HTTP(S) listener: mail client set-up and the MTA-STS policy.

Phones and laptops find their settings by themselves if a server answers the questions
their mail programs ask: Thunderbird's autoconfig, Outlook's Autodiscover, Apple's
configuration profiles. Senders that honour MTA-STS (RFC 8461) fetch the policy over
HTTPS. ``documents`` builds each answer as a pure function of the settings (tested
without sockets); ``server`` is a small stdlib HTTP server that routes requests to them.
Off by default ([web] enabled).
"""
