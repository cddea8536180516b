"""ManageSieve (RFC 5804): users manage their own Sieve scripts from Thunderbird, Roundcube
or sieve-connect.

Shape, as the other protocol packages: `reader.py` assembles one command with its literals
inlined, within the line and literal bounds; `parse.py` turns it into a command object;
`replies.py` names every reply and formats strings and response codes; `errors.py` holds
the exceptions that know their reply; `session.py` is the state machine (NONAUTH →
AUTHENTICATED → LOGOUT) with one `cmd_VERB` handler per verb. Sockets, TLS and idle
timeouts belong to `appliance.net`; the scripts live in `appliance.store`; what a script
may say is `appliance.mda.sieve`'s, so a script is checked by the very parser that runs it.

Choices where the RFC leaves room:

- Passwords only inside TLS (STARTTLS on 4190), as on every other port: before it, SASL
  lists no mechanism and AUTHENTICATE answers NO (ENCRYPT-NEEDED).
- Logins go through the shared `Authenticator`, so a guesser is slowed and blocked across
  IMAP, POP3, SMTP and ManageSieve together.
- A script is parsed before it is stored: PUTSCRIPT of an invalid script answers NO with
  the line and the reason, and nothing is stored. Names and scripts pass the checks of
  `appliance.mda.scripts`, the account page's Sieve editor's too, within the
  ``[managesieve]`` limits (max_script_size, max_scripts). Scripts are kept byte for byte as the
  client sent them, so GETSCRIPT returns exactly what PUTSCRIPT stored.
- The active script runs after the user's account rules (see `appliance.mda.rules`), so
  activating a script never turns an out-of-office off.
- Literals from the client may be `{n+}` (RFC 5804 §4) or `{n}`: ManageSieve has no
  continuation for literals, so both are read at once, as Dovecot's Pigeonhole does.
"""
