"""The least a Python POP3 server over SQLite does: what thread-per-connection CPython reaches.

Not a mail server: no passwords are checked, no limits, no deletions, no flags. Each client
gets a thread; each maildrop is rows of one SQLite table; RETR reads the texts of the next 32
messages in one row (as Kotakpos's store does) and sends each dot-stuffed. The POP3 benchmark
runs it beside Dovecot in the same run, so the table says how far a Python server of
Kotakpos's design can go on the machine it ran on, apart from everything a real server adds.

    python -m bench.reference_pop3 --port 1110 --db maildrops.sqlite   # serves until interrupted
"""

import argparse
import signal
import socket
import sqlite3
import sys
import threading
from pathlib import Path

from bench.peers import ModuleServer

READ_AHEAD = 32


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS messages(address TEXT, number INTEGER, data BLOB,"
               " PRIMARY KEY(address, number))")
    return db


class _Session:
    def __init__(self, sock: socket.socket, db_path: Path):
        self.sock = sock
        self.db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self.address = ""
        self.count = 0
        self.ahead: dict[int, bytes] = {}

    def run(self) -> None:
        self.sock.sendall(b"+OK reference POP3\r\n")
        buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not self.answer(line.split()):
                    return

    def answer(self, words: list[bytes]) -> bool:
        verb = words[0].upper() if words else b""
        if verb == b"RETR":
            text = self.text(int(words[1]))
            if text.startswith(b"."):
                text = b"." + text
            self.sock.sendall(b"+OK %d octets\r\n" % len(text) + text.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        elif verb == b"USER":
            self.address = words[1].decode()
            self.sock.sendall(b"+OK\r\n")
        elif verb == b"STAT":
            self.count, total = self.db.execute("SELECT count(*), total(length(data)) FROM messages WHERE address = ?",
                                                (self.address,)).fetchone()
            self.sock.sendall(b"+OK %d %d\r\n" % (self.count, total))
        elif verb in (b"LIST", b"UIDL"):
            self.sock.sendall(b"+OK\r\n" + b"".join(b"%d %d\r\n" % (n, n) for n in range(1, self.count + 1)) + b".\r\n")
        elif verb == b"QUIT":
            self.sock.sendall(b"+OK bye\r\n")
            return False
        else:
            self.sock.sendall(b"+OK\r\n")
        return True

    def text(self, number: int) -> bytes:
        text = self.ahead.pop(number, None)
        if text is None:
            numbers = list(range(number, min(number + READ_AHEAD, self.count + 1)))
            data, index = self.db.execute(
                "SELECT CAST(group_concat(data, '') AS BLOB), group_concat(number || ' ' || length(data), ' ')"
                f" FROM messages WHERE address = ? AND number IN ({','.join('?' * len(numbers))})",
                (self.address, *numbers)).fetchone()
            pairs = list(map(int, index.split()))
            offset = 0
            for n, length in zip(pairs[0::2], pairs[1::2]):
                self.ahead[n] = data[offset:offset + length]
                offset += length
            text = self.ahead.pop(number)
        return text if text.endswith(b"\r\n") else text + b"\r\n"


def _serve(sock: socket.socket, db_path: Path) -> None:
    with sock:
        _Session(sock, db_path).run()


class ReferencePop3(ModuleServer):
    """The reference in its own process, on 127.0.0.1:port; load maildrops before start."""

    module = "bench.reference_pop3"

    def __init__(self, workdir: str | None = None):
        super().__init__("bench-reference-pop3-", workdir)
        self.db_path = self.root / "maildrops.sqlite"

    def load_maildrop(self, address: str, messages) -> None:
        """(index, raw) messages, as Dovecot.load_maildir takes them; numbered from 1."""
        db = _open(self.db_path)
        db.execute("BEGIN")
        db.executemany("INSERT INTO messages VALUES (?, ?, ?)", ((address, index + 1, raw) for index, raw in messages))
        db.execute("COMMIT")
        db.close()

    def start(self) -> "ReferencePop3":
        _open(self.db_path).close()  # an empty table if nothing was loaded
        return super().start()

    def arguments(self) -> list[str]:
        return ["--db", str(self.db_path)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", type=Path, required=True, help="SQLite file with the maildrops (ReferencePop3 loads it)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.create_server(("127.0.0.1", args.port), backlog=128)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=_serve, args=(sock, args.db), daemon=True).start()


if __name__ == "__main__":
    main()
