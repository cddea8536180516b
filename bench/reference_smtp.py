"""The reference issue 3 sets its SMTP goal by: a plain aiosmtpd handler, one SQLite fsync per message.

Issue 3 says such a handler "already reaches about 1.3× Postfix" and derives the 2× goal from it.
The SMTP benchmark runs it beside Postfix in the same run, so every results table says what
that reference reaches on the machine it ran on. It accepts any recipient, stores each message
as one row and answers 250 once the row's commit is on disk (WAL, synchronous=FULL): no
filters, no parsing, no mailboxes.

    python -m bench.reference_smtp --port 2525     # serves until interrupted
"""

import argparse
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from aiosmtpd.controller import Controller

from bench.peers import ModuleServer


class _Handler:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS messages(id INTEGER PRIMARY KEY, rcpt TEXT, body BLOB)")

    async def handle_DATA(self, server, session, envelope):
        self.db.execute("INSERT INTO messages(rcpt, body) VALUES (?, ?)",
                        (",".join(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 OK"


class ReferenceSmtp(ModuleServer):
    """The reference handler in its own process, on 127.0.0.1:port."""

    module = "bench.reference_smtp"

    def __init__(self, workdir: str | None = None):
        super().__init__("bench-reference-smtp-", workdir)

    def arguments(self) -> list[str]:
        return ["--data", str(self.root)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", default=None, help="folder for the database (default: a new temporary one)")
    args = ap.parse_args(argv)
    data = Path(args.data or tempfile.mkdtemp(prefix="bench-reference-"))
    controller = Controller(_Handler(data / "reference.sqlite"), hostname="127.0.0.1", port=args.port)
    controller.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
