"""IMAP4rev1 server (RFC 3501), IMAP4rev2 (RFC 9051) for clients that ENABLE it, with the
extensions real clients rely on.

The package follows the house shape for protocols:

- ``parse.py``: the tokenizer and ``parse_command`` (complete command bytes with
  literals inlined → a command object); no sockets, no store.
- ``commands/``: the command classes, one module per state in which they are legal
  (``any``, ``nonauth``, ``auth``, ``selected``), so the file layout mirrors RFC 3501 §6;
  NOTIFY's grammar (``notify``) is large enough for a module of its own;
  ``sorting`` holds SORT, THREAD and CANCELUPDATE (RFC 5256, RFC 5267).
- ``search.py`` / ``fetch.py``: the two sub-grammars big enough for their own module
  (SEARCH keys, FETCH attributes).
- ``reader.py``: reads one whole command from a Connection, answering ``{n}`` with a
  continuation only after checking ``n`` against the current literal limit.
- ``replies.py``: named responses and the single writer of tagged/untagged lines.
- ``session.py``: the state machine; the commands with logic enough for their own module
  act in ``append.py`` (MULTIAPPEND, CATENATE with ``imapurl.py``), ``esearch.py``
  (ESEARCH, SEARCHRES, PARTIAL), ``notify.py`` (NOTIFY) and ``sort.py`` (the SORT, THREAD
  and CANCELUPDATE handlers, mixed into the session, and the search contexts of RFC 5267;
  ``thread.py`` holds the two THREAD algorithms, pure functions).
- ``push.py``: the one thread that writes IDLE (and NOTIFY) news to waiting clients, so
  that their own threads sleep on.
- ``utf7.py``: the modified UTF-7 codec of mailbox names (RFC 3501 §5.1.3); a session that
  ENABLEs UTF8=ACCEPT (RFC 9755) uses UTF-8 names instead.
"""
