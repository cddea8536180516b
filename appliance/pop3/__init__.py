"""POP3 (RFC 1939) with CAPA, RESP-CODES, STLS and SASL PLAIN, over each user's INBOX.

Shape: `parse.py` turns a line into a command object, `replies.py` names every
reply and builds the multi-line ones as pure functions, `errors.py` holds the
exceptions that know their reply, and `session.py` is the state machine
(AUTHORIZATION → TRANSACTION → UPDATE) with one `cmd_VERB` handler per verb.
Sockets, TLS, line limits and idle timeouts belong to `appliance.net`; every
SQL statement to `appliance.store`.

Choices where the RFCs leave room:

- Concurrent sessions on one maildrop are allowed; we never answer [IN-USE].
  Each session works on the snapshot it took at login, addressed by UID. A
  message that another session (POP3 or IMAP) removed meanwhile answers -ERR
  for its number while the rest keeps working, and QUIT removes only the
  marked messages that still exist. A phone and a desktop that both "leave
  mail on the server" therefore never lock each other out and never lose mail.
- QUIT removes the marked messages in one store transaction and says +OK only
  once it is durable; any other end of the session removes nothing.
- UIDL values are "<uidvalidity>.<uid>" of INBOX: UIDVALIDITY never changes
  and UIDs are never reused, so a value names one message forever.
- RETR sets \\Seen for IMAP clients. The flags are written in one store call
  when the session ends (QUIT or drop) rather than once per message, so
  downloading a big maildrop costs one commit instead of one per message, and
  messages that had \\Seen at login cost nothing.
- RETR and TOP read ahead: a client going through the maildrop in order gets
  the next messages from the same store call (`session.ReadAhead`), because
  each SQLite call hands the GIL to the other sessions and back. A message
  read ahead that another session then removes is dropped when the store
  announces it, so the -ERR above still holds.
- `pop3.deleted_to_trash` moves deleted mail to the \\Trash mailbox instead of
  erasing it (default: erase, as the RFC says).
"""
