"""POP3 (RFC 1939) with CAPA, RESP-CODES, STLS and SASL PLAIN, over each user's INBOX.

Shape: `parse.py` turns a line into a command object, `replies.py` names every
reply and builds the multi-line ones as pure functions, `errors.py` holds the
exceptions that know their reply, and `session.py` is the state machine
(AUTHORIZATION → TRANSACTION → UPDATE) with one `cmd_VERB` handler per verb.
Sockets, TLS, line limits and idle timeouts belong to `appliance.net`; every
SQL statement to `appliance.store`.

Concurrent sessions on one maildrop are allowed (no [IN-USE]): each session
works on the snapshot it took at login, addressed by UID. A message that
another session (POP3 or IMAP) removed meanwhile answers -ERR for its number
while the rest keeps working, and QUIT removes only the marked messages that
still exist, in one store transaction. A phone and a desktop that both "leave
mail on the server" therefore never block each other and never lose mail.
"""
