"""The HTTP(S) listener: the account page, mail client set-up and the MTA-STS policy.

Each user changes their password, app passwords and two-step sign-in on the account page
(``account``, HTTPS only), sees their usage and sets up a device. Phones and laptops find
their settings by themselves if a server answers the questions their mail programs ask:
Thunderbird's autoconfig, Outlook's Autodiscover, Apple's configuration profiles
(``setup``). Senders that honour MTA-STS (RFC 8461) fetch the policy over HTTPS.
``documents`` builds each set-up answer as a pure function of the settings (tested without
sockets); ``app`` puts the routes together for HTTP and HTTPS, and ``server`` serves them
with uvicorn (its docstring says why). On by default ([web] enabled).
"""
