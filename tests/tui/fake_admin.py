"""Fixed admin data for snapshot tests: the same answers and the same clock every run.

Only the snapshots use it (a live server has random ports and times); every behaviour
test runs against a real server.
"""

from __future__ import annotations

import time

NOW = 1_800_000_000.0     # 2027-01-15 08:00:00 UTC: the clock of every snapshot
MINUTE = int(NOW // 60)
# anna's account rules: the out-of-office the account page wrote
VACATION = ('require ["vacation"];\nvacation :days 7 :subject "Out of office"\n'
            '  "I am away until 20 January; Bob answers in the meantime.";\n')

LISTENERS = [
    {"name": name, "addresses": [f"0.0.0.0:{port}"], "implicit_tls": name in ("smtps", "pop3s", "imaps"),
     "state": "listening"}
    for name, port in (("smtp", 25), ("submission", 587), ("smtps", 465), ("pop3", 110), ("pop3s", 995),
                       ("imap", 143), ("imaps", 993))
]

SESSIONS = [
    {"id": 41, "listener": "imaps", "protocol": "imap", "peer_ip": "192.168.1.23", "peer_port": 50122,
     "local_port": 993, "started": NOW - 3720, "user": "anna@example.org", "tls": "TLSv1.3", "state": "selected",
     "bytes_in": 18200, "bytes_out": 2_400_000, "commands": 310, "last_command": "IDLE", "last_active": NOW - 30},
    {"id": 57, "listener": "submission", "protocol": "smtp", "peer_ip": "192.168.1.40", "peer_port": 61000,
     "local_port": 587, "started": NOW - 4, "user": "bob@example.org", "tls": "TLSv1.3", "state": "data",
     "bytes_in": 90_000, "bytes_out": 620, "commands": 6, "last_command": "DATA", "last_active": NOW - 1},
    {"id": 58, "listener": "smtp", "protocol": "smtp", "peer_ip": "203.0.113.9", "peer_port": 41800,
     "local_port": 25, "started": NOW - 2, "user": "", "tls": "", "state": "greeted",
     "bytes_in": 40, "bytes_out": 180, "commands": 1, "last_command": "EHLO mx.example.net", "last_active": NOW - 2},
]

QUEUE = [
    {"id": 100 + i, "sender": "anna@example.org", "recipient": recipient, "domain": recipient.split("@")[1],
     "created": NOW - 7200 + i * 60, "attempts": attempts, "next_attempt": NOW + 300 * (i - 1), "last_error": error,
     "state": state, "size": 14_000 + i, "blob_id": 7, "dsn": "{}"}
    for i, (recipient, state, attempts, error) in enumerate((
        ("max@partner.example", "queued", 3, "451 4.7.1 Greylisted, try again later"),
        ("ops@slow.example", "queued", 1, "connection timed out"),
        ("info@gone.example", "held", 5, "no MX or A record for gone.example"),
        ("lisa@partner.example", "queued", 0, ""),
    ))
]

USERS = [
    {"address": "anna@example.org", "quota": 1024 ** 3, "used": 312 * 1024 ** 2, "created": NOW - 86400 * 30},
    {"address": "bob@example.org", "quota": 0, "used": 48 * 1024 ** 2, "created": NOW - 86400 * 12},
]

FOLDERS = [
    {"name": "INBOX", "special_use": "", "messages": 3, "unseen": 1, "size": 48_000},
    {"name": "Sent", "special_use": "\\Sent", "messages": 12, "unseen": 0, "size": 210_000},
    {"name": "Trash", "special_use": "\\Trash", "messages": 0, "unseen": 0, "size": 0},
]

MESSAGES = [
    {"uid": 3, "from": "Bob <bob@example.org>", "subject": "Lunch on Friday?", "date": NOW - 600, "size": 2100,
     "flags": []},
    {"uid": 2, "from": "Max Mustermann <max@partner.example>", "subject": "Re: quarterly figures",
     "date": NOW - 5400, "size": 41_000, "flags": ["\\Seen", "\\Answered"]},
    {"uid": 1, "from": "noreply@bank.example", "subject": "Your statement is ready", "date": NOW - 86400 * 3,
     "size": 4900, "flags": ["\\Seen"]},
]

LOG = [
    {"type": "log", "time": NOW - 120 + i * 10, "level": level, "name": name, "pid": pid, "message": message}
    for i, (level, name, pid, message) in enumerate((
        ("INFO", "kotakpos", 4242, "ready smtp=0.0.0.0:25 submission=0.0.0.0:587 imap=0.0.0.0:143"),
        ("INFO", "kotakpos.net", 4250, "session 41 open imaps from 192.168.1.23:50122"),
        ("INFO", "kotakpos.auth", 4250, "login ok user=anna@example.org ip=192.168.1.23"),
        ("WARNING", "kotakpos.auth", 13007, "login failed user=admin@example.org ip=203.0.113.50"),
        ("INFO", "kotakpos.mta", 4250, "deferred id=100 to max@partner.example: 451 4.7.1 Greylisted"),
        ("ERROR", "kotakpos.mta", 4250, "bounced id=102 to info@gone.example: no MX or A record"),
    ))
]

# Two workers under the supervisor 4242; the second was killed 40 minutes ago and started again.
WORKERS = [
    {"index": 0, "pid": 4250, "started": NOW - 3 * 86400 - 4 * 3600, "sessions": 1,
     "sessions_by_protocol": {"imap": 1}, "cpu_seconds": 10_800.0, "rss": 71 * 1024 ** 2,
     "pss": 48 * 1024 ** 2, "restarts": 0, "last_exit": None},
    {"index": 1, "pid": 13007, "started": NOW - 2400, "sessions": 2, "sessions_by_protocol": {"smtp": 2},
     "cpu_seconds": 2400 * 0.12, "rss": 64 * 1024 ** 2, "pss": 39 * 1024 ** 2, "restarts": 1,
     "last_exit": {"reason": "killed by signal 9 (SIGKILL)", "signal": "SIGKILL", "status": None, "at": NOW - 2400}},
]


class QuietSubscription:
    """No live events: the snapshots show the fixed state."""

    def get(self, timeout: float | None = None):
        time.sleep(timeout or 0)
        return None

    def close(self) -> None:
        pass


class FakeAdmin:
    def subscribe(self):
        return QuietSubscription()

    def traffic(self, minutes: int = 60) -> dict:
        incoming = [(i * 7) % 11 for i in range(minutes)]
        outgoing = [(i * 3) % 5 for i in range(minutes)]
        return {"minute": MINUTE, "in": incoming, "out": outgoing}

    def log_tail(self, limit: int = 500) -> list[dict]:
        return LOG[-limit:]

    def status(self) -> dict:
        return {
            "version": "0.1.0", "hostname": "mail.example.org", "pid": 4242, "uptime": 3 * 86400 + 4 * 3600,
            "data_dir": "/var/lib/kotakpos", "listeners": LISTENERS, "sessions": len(SESSIONS),
            "sessions_by_protocol": {"imap": 1, "smtp": 2},
            "counts": {"domains": 1, "users": 2, "aliases": 1, "messages": 1520, "blobs": 1400, "queue": 4,
                       "quarantine": 1, "bytes": 360 * 1024 ** 2},
            "queue": {"depth": 4, "by_state": {"queued": 3, "held": 1}, "oldest": NOW - 7200},
            "stats": {"mda.accept": 1480, "mda.junk": 31, "mda.spam": 44, "mda.virus": 2, "mda.quarantine": 1,
                      "mda.reject": 13},
            "today": {"mda.accept": 212, "mda.junk": 5, "mda.spam": 7, "mda.virus": 1},
            "blocked": 1, "tls_expiry": "2027-04-01T00:00:00+00:00",
            "disk_free": 41 * 1024 ** 3,
        }

    def sessions(self) -> list[dict]:
        return SESSIONS

    def workers(self, sessions: bool = True) -> list[dict]:
        return [{**w, "session_list": [s for s in SESSIONS if s["protocol"] in w["sessions_by_protocol"]]}
                if sessions else dict(w) for w in WORKERS]

    def blocked(self) -> list[dict]:
        return [{"ip": "127.0.0.1", "failures": 3, "until": 0, "trusted": True},
                {"ip": "203.0.113.50", "failures": 12, "until": NOW + 3000, "trusted": False},
                {"ip": "198.51.100.7", "failures": 2, "until": 0, "trusted": False}]

    def queue(self, limit: int = 10000) -> list[dict]:
        return QUEUE[:limit]

    def queue_entry(self, queue_id: int) -> dict:
        return next(q for q in QUEUE if q["id"] == queue_id)

    def users(self) -> list[dict]:
        return USERS

    def domains(self) -> list[str]:
        return ["example.org"]

    def aliases(self) -> dict[str, list[str]]:
        return {"sales@example.org": ["anna@example.org", "bob@example.org"]}

    def mailboxes(self, address: str) -> list[dict]:
        return FOLDERS

    def messages(self, address: str, mailbox: str, limit: int = 500, offset: int = 0) -> list[dict]:
        return MESSAGES if mailbox == "INBOX" else []

    def message(self, address: str, mailbox: str, uid: int) -> str:
        return ("From: Bob <bob@example.org>\nTo: anna@example.org\nSubject: Lunch on Friday?\n\n"
                "Shall we try the new place on the corner?\n")

    def quarantine_list(self, limit: int = 1000) -> list[dict]:
        return [{"id": 9, "sender": "billing@invoices.example", "recipients": ["anna@example.org"],
                 "reason": "blocked attachment type: invoice.pdf.exe", "created": NOW - 1800, "size": 52_000,
                 "subject": "Your invoice", "from": "Billing <billing@invoices.example>"}]

    def quarantine_show(self, quarantine_id: int) -> dict:
        return {"id": 9, "sender": "billing@invoices.example", "recipients": ["anna@example.org"],
                "reason": "blocked attachment type: invoice.pdf.exe", "created": NOW - 1800, "size": 52_000,
                "message": "From: Billing <billing@invoices.example>\nSubject: Your invoice\n\nSee attached.\n"}

    def rules_scripts(self, address: str) -> dict:
        return {"account_rules": VACATION if address == "anna@example.org" else "",
                "scripts": [{"name": "newsletters", "active": True, "size": 94, "updated": NOW - 86400 * 3},
                            {"name": "old filters (Roundcube)", "active": False, "size": 1320,
                             "updated": NOW - 86400 * 40}]}

    def rules_get(self, address: str, name: str = "") -> str:
        if name == "old filters (Roundcube)":
            return 'require ["fileinto"];\nif address :is "from" "boss@example.org" {\n  fileinto "Boss";\n}\n'
        return 'require ["fileinto"];\nif header :contains "subject" "newsletter" {\n  fileinto "News";\n}\n'

    def rules_check(self, script: str, address: str = "") -> dict:
        return {"ok": True, "line": 0, "error": "", "warnings": []}  # anna has a "News" folder

    def receipts(self, address: str, limit: int = 200) -> dict:
        return {"address": address, "policy": "client", "at": NOW,
                "sent": [{"message_id": "<a1@example.org>", "recipient": "max@partner.example",
                          "subject": "Contract draft", "sent": NOW - 7200, "delivery": "delivered",
                          "display": "displayed", "updated": NOW - 3600, "detail": ""}],
                "requested": [{"message_id": "<n7@news.example>", "from": "news@news.example",
                               "subject": "Please confirm", "received": NOW - 600, "state": "pending"}]}
