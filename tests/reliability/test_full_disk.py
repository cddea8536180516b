"""Quotas and a full disk: the sender is told to come back later, and nothing stored is harmed.

* A recipient over quota is refused at RCPT with 452 4.2.2 (``smtp.quota_reply =
  "permanent"``: 552 5.2.2), or after DATA when the real size passes the quota. A list
  member over quota is left out and the sender gets a failure DSN for that member.
  APPEND over quota answering NO [OVERQUOTA] is
  tests/protocol/test_imap_mailboxes.py::test_namespace_and_quota.
* With the data folder on a small tmpfs the test mounts and fills: SMTP answers
  452 4.3.1, APPEND answers NO [UNAVAILABLE], POP3's QUIT deletes nothing and says so,
  what was stored before is intact, and all of it works again once space returns.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from appliance.smtp import replies as R
from tests.conftest import PASSWORD
from tests.protocol.imapconv import deliver, session
from tests.protocol.pop3_wire import Pop3Wire
from tests.protocol.smtp_wire import Wire, inbox


def _full_user(server, address: str) -> None:
    """A user whose 100-byte quota one stored message already passes."""
    server.add_user(address, quota=100)
    deliver(server, address, b"Subject: fat\r\n\r\n" + b"x" * 500 + b"\r\n")


def _mail(wire: Wire, rcpt: str, body: bytes) -> bytes:
    wire.transact("250 *", "MAIL FROM:<sender@client.test>")
    wire.transact("250 *", f"RCPT TO:<{rcpt}>")
    wire.transact("354 *", "DATA")
    wire.send_raw(b"Subject: test\r\n\r\n" + body + b"\r\n.\r\n")
    return wire.read_reply()


# -- quotas -------------------------------------------------------------------------------

def test_recipient_over_quota_is_told_to_try_later_and_others_still_get_mail(server):
    server.add_user("full@example.org", quota=4000)
    server.add_user("roomy@example.org")
    deliver(server, "full@example.org", b"Subject: fat\r\n\r\n" + b"x" * 5000 + b"\r\n")
    c = Wire.open(server)
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<sender@client.test>")
    c.transact(R.R452_MAILBOX_FULL, "RCPT TO:<full@example.org>")
    c.transact(R.R250_RCPT_OK, "RCPT TO:<roomy@example.org>")
    c.transact("354 *", "DATA")
    c.send_raw(b"Subject: hi\r\n\r\nhello\r\n.\r\n")
    c.expect("250 *")
    assert len(inbox(server, "roomy@example.org")) == 1
    assert len(inbox(server, "full@example.org")) == 1


def test_declared_size_that_would_pass_the_quota_is_refused(server):
    server.add_user("tight@example.org", quota=10000)
    c = Wire.open(server)
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<sender@client.test> SIZE=20000")
    c.transact(R.R452_MAILBOX_FULL, "RCPT TO:<tight@example.org>")
    c.transact(R.R250_RESET, "RSET")
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<sender@client.test> SIZE=2000")
    c.transact(R.R250_RCPT_OK, "RCPT TO:<tight@example.org>")


def test_permanent_quota_reply_by_config(make_server):
    server = make_server(smtp={"quota_reply": "permanent"})
    _full_user(server, "full@example.org")
    c = Wire.open(server)
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<sender@client.test>")
    c.transact(R.R552_MAILBOX_FULL, "RCPT TO:<full@example.org>")


def test_alias_with_one_member_over_quota_still_delivers_to_the_other(server):
    _full_user(server, "full@example.org")
    server.add_user("roomy@example.org")
    server.store.add_alias("team@example.org", ["full@example.org", "roomy@example.org"])
    c = Wire.open(server)
    c.ehlo()
    assert _mail(c, "team@example.org", b"to the team").startswith(b"250 ")
    assert len(inbox(server, "roomy@example.org")) == 1
    assert len(inbox(server, "full@example.org")) == 1  # only the message that filled it
    # the sender hears which member did not get it (RFC 3464 failure report, 5.2.2)
    [bounce] = [r for r in server.store.list_queue() if r.recipient == "sender@client.test"]
    assert bounce.sender == ""
    report = server.store.get_raw(bounce.blob_id)
    assert b"Final-Recipient: rfc822; full@example.org" in report and b"Status: 5.2.2" in report
    assert b"Original-Recipient: rfc822; team@example.org" in report and b"to the team" in report
    assert b"roomy@example.org" not in report


def test_list_member_whose_quota_this_message_would_pass_is_left_out(server):
    """Decided after DATA with the real size: the sender gave no SIZE at MAIL FROM."""
    server.add_user("tight@example.org", quota=3000)
    server.add_user("roomy@example.org")
    server.store.add_alias("team@example.org", ["tight@example.org", "roomy@example.org"])
    c = Wire.open(server)
    c.ehlo()
    big = (b"x" * 70 + b"\r\n") * 70
    assert _mail(c, "team@example.org", big).startswith(b"250 ")
    assert len(inbox(server, "roomy@example.org")) == 1 and inbox(server, "tight@example.org") == []
    assert _mail(c, "tight@example.org", big) == b"452 4.2.2 Mailbox full, try again later\r\n"
    assert _mail(c, "tight@example.org", b"small").startswith(b"250 ")
    assert len(inbox(server, "tight@example.org")) == 1


def test_a_sender_who_asked_for_no_reports_gets_none_for_a_full_member(server):
    _full_user(server, "full@example.org")
    server.add_user("roomy@example.org")
    server.store.add_alias("team@example.org", ["full@example.org", "roomy@example.org"])
    c = Wire.open(server)
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<sender@client.test>")
    c.transact(R.R250_RCPT_OK, "RCPT TO:<team@example.org> NOTIFY=NEVER")
    c.transact("354 *", "DATA")
    c.send_raw(b"Subject: hi\r\n\r\nhello\r\n.\r\n")
    c.expect("250 *")
    assert len(inbox(server, "roomy@example.org")) == 1 and server.store.list_queue() == []


def test_list_whose_every_member_is_full_is_refused_at_rcpt(server):
    _full_user(server, "full@example.org")
    _full_user(server, "full2@example.org")
    server.store.add_alias("team@example.org", ["full@example.org", "full2@example.org"])
    c = Wire.open(server)
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<sender@client.test>")
    c.transact(R.R452_MAILBOX_FULL, "RCPT TO:<team@example.org>")


# -- a full disk --------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 24 MB tmpfs for the data folder (root only; CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder, leave: int) -> None:
    """Fill the file system with files until fewer than ``leave`` bytes remain."""
    n = 0
    while True:
        free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
        if free <= leave:
            return
        with open(folder / f"filler-{n}", "wb") as f:
            f.write(b"\0" * min(free - leave, 4 * 1024 * 1024))
        n += 1


def _random_text(size: int) -> bytes:
    """Incompressible, never stored twice, in 76-character lines."""
    text = os.urandom(size // 2).hex().encode()
    return b"\r\n".join(text[i:i + 76] for i in range(0, len(text), 76))


def _free(folder) -> None:
    for path in folder.glob("filler-*"):
        path.unlink()


def test_full_disk_is_a_temporary_refusal_and_service_resumes(small_disk, make_server):
    server = make_server(data_dir=small_disk / "data")
    server.store.add_domain("example.org")
    server.add_user("alice@example.org")
    server.add_user("carol@example.org")
    before = []
    smtp = Wire.open(server)
    smtp.ehlo()
    for n in range(5):
        body = f"kept {n} {uuid.uuid4()}".encode()
        assert _mail(smtp, "alice@example.org", body).startswith(b"250 ")
        before.append(body)
    deliver(server, "carol@example.org", b"Subject: for pop\r\n\r\nkeep me\r\n")
    pop = Pop3Wire.open(server, "pop3s")
    pop.transact("USER carol@example.org", "+OK*")
    pop.transact(f"PASS {PASSWORD}", "+OK*")
    imap = session(server, "alice@example.org")

    _fill(small_disk, leave=64 * 1024)
    refusals = 0
    for n in range(40):  # past whatever SQLite still had free in its pages and WAL
        reply = _mail(smtp, "alice@example.org", _random_text(200_000))
        if reply.startswith(b"452"):
            assert reply == R.format_reply(R.R452_STORAGE_FULL)
            refusals += 1
            break
    assert refusals, "the disk never filled up"
    big = b"Subject: append\r\n\r\n" + b"y" * 200000 + b"\r\n"
    imap.send(b"a1 APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")
    _, tagged = imap.read_until("a1")
    assert tagged.startswith(b"a1 NO [UNAVAILABLE]")
    pop.transact("DELE 1", "+OK*")
    # Deleting may still fit in the pages SQLite already has; either way the reply is true.
    pop.send("QUIT")
    quit_reply = pop.line()
    assert quit_reply.startswith((b"+OK", b"-ERR [SYS/TEMP]")), quit_reply
    assert len(inbox(server, "carol@example.org")) == (0 if quit_reply.startswith(b"+OK") else 1)

    # Nothing stored before was harmed, and the server still answers everyone.
    bodies = [raw.split(b"\r\n\r\n", 1)[1] for raw in inbox(server, "alice@example.org")]
    assert all(body + b"\r\n" in bodies for body in before)
    assert server.store.integrity_check() == "ok"
    imap.transact("OK", "NOOP")
    smtp.transact(R.R250_OK, "NOOP")

    _free(small_disk)
    assert _mail(smtp, "alice@example.org", b"after the clean-up").startswith(b"250 ")
    small = b"Subject: append\r\n\r\nsmall\r\n"
    imap.send(b"a2 APPEND INBOX {%d+}\r\n" % len(small) + small + b"\r\n")
    _, tagged = imap.read_until("a2")
    assert tagged.startswith(b"a2 OK")
    deliver(server, "carol@example.org", b"Subject: for pop\r\n\r\nagain\r\n")
    pop = Pop3Wire.open(server, "pop3s")
    pop.transact("USER carol@example.org", "+OK*")
    pop.transact(f"PASS {PASSWORD}", "+OK*")
    pop.transact("DELE 1", "+OK*")
    pop.transact("QUIT", "+OK*")
    print(f"\nfull disk: SMTP 452 4.3.1, APPEND NO [UNAVAILABLE], POP3 QUIT {quit_reply[:15]!r}; "
          f"{len(before)} stored messages intact; SMTP, APPEND and POP3 work again once space returned")
