"""Kotakpos: a mail server for a small office in one process.

The packages follow the way mail flows (see docs/ARCHITECTURE.md): ``net`` accepts connections,
``smtp``/``pop3``/``imap`` speak the protocols, ``mta`` routes and relays, ``mda``
filters and delivers, ``store`` keeps everything in one SQLite file, ``admin`` and
``tui`` let a person watch and steer it, ``cli`` is the ``kotakpos`` command.
"""

__version__ = "0.1.0"
