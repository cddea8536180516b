"""Attacks, each a test: what an attacker tries, and what must come of it.

Covered elsewhere, and not repeated here:

* open relay with the classic address tricks (percent hack, bang paths, source routes,
  quoted local parts, IP literals, case, trailing dots):
  tests/protocol/test_smtp_policy.py::test_no_relay_whatever_the_trick;
* SMTP smuggling with twelve bare-CR/LF end-of-data imitations, both policies, BDAT:
  tests/protocol/test_smtp_smuggling.py;
* STARTTLS command injection: SMTP (test_smtp_smuggling.py::
  test_command_pipelined_behind_starttls_is_never_run), POP3 (test_pop3_session.py::
  test_stls_pipelined_command_is_never_executed), IMAP (test_imap_session.py::
  test_starttls_discards_pipelined_bytes_then_login_works), the net layer
  (tests/unit/test_net.py::test_starttls_discards_what_was_sent_before_the_handshake);
* IMAP literals too big before and after login: test_imap_session.py::test_literal_limits,
  test_literal_bomb_after_login_is_bounded_by_message_size;
* mailbox names that try to leave the user's tree: test_imap_mailboxes.py::
  test_users_see_only_their_own_mailboxes; POP3: test_a_user_sees_only_their_own_maildrop.

Here: relay with the tricks those leave out and on every port; smuggling split across
TCP segments; guessing passwords across all three protocols (slowed, blocked, unblocked
by the admin); literal floods and deep nesting before and after login; isolation
tricks beyond mailbox names (UIDs, COPY/MOVE/APPEND targets, SASL authzid, SQL).
"""

from __future__ import annotations

import base64
import time

import pytest

from appliance.admin.client import AdminClient
from appliance.pop3 import replies as P
from appliance.smtp import replies as R
from tests.conftest import PASSWORD
from tests.protocol.imapconv import Conversation, deliver, message, session
from tests.protocol.pop3_wire import Pop3Wire
from tests.protocol.smtp_wire import UNREACHABLE_REMOTE, Wire, inbox

ALICE, BOB = "alice@example.org", "bob@example.org"
FIGURES: dict[str, int] = {}


def tried(kind: str, n: int = 1) -> None:
    FIGURES[kind] = FIGURES.get(kind, 0) + n


@pytest.fixture(scope="module", autouse=True)
def _print_figures():
    yield
    print("\nattacks tried: " + ", ".join(f"{n} {kind}" for kind, n in sorted(FIGURES.items())) + "; nothing let in")


@pytest.fixture
def office(make_server):
    # A patient attacker reconnects after the error limit; here one session tries it all.
    server = make_server(mta=UNREACHABLE_REMOTE, smtp={"max_errors": 1000}, imap={"max_errors": 1000})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    server.add_user(BOB)
    return server


# -- open relay ------------------------------------------------------------------------------

MORE_TRICKS = [
    "victim@remote.test@example.org",
    "victim%remote.test%example.org@example.org",
    "victim%remote.test",
    "remote.test!victim",
    "remote.test!victim@EXAMPLE.org.",
    '"victim@remote.test"',
    '"victim%remote.test"@[127.0.0.1]',
    "victim@[192.168.1.10]",
    "victim@[IPv6:0:0:0:0:0:0:0:1]",
    "victim@[mail.example.org]",
    "victim@remote.test:25",
    "victim@remote.test\\@example.org",
    "<victim@remote.test>",
    "victim@remote..test",
    "victim@localhost",
    "@[127.0.0.1]:victim@remote.test",
    "victim@remote.test (comment)@example.org",
]


@pytest.mark.parametrize("listener", ["smtp", "submission"])
def test_no_relay_with_further_tricks_on_any_port_without_auth(office, listener):
    c = Wire.open(office, listener)
    c.ehlo()
    if listener == "submission":  # without AUTH, MAIL itself is refused
        c.transact("530 *", "MAIL FROM:<alice@example.org>")
        c.starttls(office)
        c.ehlo()
        c.transact("530 *", "MAIL FROM:<alice@example.org>")
        tried("relay tricks", 1)
        return
    # a forged local sender buys nothing either
    for sender in ("someone@remote.test", ALICE, ""):
        c.transact(R.R250_SENDER_OK, f"MAIL FROM:<{sender}>")
        for address in MORE_TRICKS:
            reply = c.transact("[45]* *", f"RCPT TO:<{address}>")
            assert not reply.startswith(b"2"), (address, reply)
            tried("relay tricks")
        c.transact(R.R503_NEED_RCPT, "DATA")
        c.transact(R.R250_RESET, "RSET")
    assert office.store.list_queue() == []


def test_no_relay_after_a_failed_auth_or_through_bdat(office):
    c = Wire.open(office, "smtps")
    c.ehlo()
    wrong = base64.b64encode(f"\0{ALICE}\0wrong".encode()).decode()
    c.transact(R.R535_AUTH_FAILED, f"AUTH PLAIN {wrong}")
    c.transact("530 *", "MAIL FROM:<alice@example.org>")
    c = Wire.open(office)
    c.ehlo()
    c.transact(R.R250_SENDER_OK, "MAIL FROM:<x@remote.test>")
    c.send_raw(b"RCPT TO:<victim@remote.test>\r\nBDAT 5 LAST\r\nhello")
    c.expect(R.R554_RELAY_DENIED)
    c.expect(R.R503_NEED_RCPT)
    tried("relay tricks", 2)
    assert office.store.list_queue() == []


# -- SMTP smuggling across TCP segments -----------------------------------------------------

FAKE_ENDS = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n", b"\r\n.\r", b"\r.\r\n", b"\n.\r\n\r\n"]


def test_fake_end_of_data_split_across_segments_never_ends_the_message(office):
    """The DATA reader scans blocks; a marker split between two packets must be judged the
    same as a whole one, at every split point, and so must the real end marker."""
    smuggled = b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: evil\r\n\r\nx"
    c = Wire.open(office)
    c.ehlo()
    for fake in FAKE_ENDS:
        content = b"Subject: first\r\n\r\nbody" + fake + smuggled + b"\r\n.\r\n"
        start = len(b"Subject: first\r\n\r\nbody")
        for split in range(start - 1, start + len(fake) + 2):
            c.transact(R.R250_SENDER_OK, "MAIL FROM:<someone@remote.test>")
            c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
            c.transact(R.R354_START_DATA, "DATA")
            c.send_raw(content[:split])
            time.sleep(0.005)  # let it arrive as its own segment
            c.send_raw(content[split:])
            c.expect(R.R550_BARE_NEWLINE)  # one reply for all of it: nothing ended early
            tried("smuggling splits")
    c.transact(R.R250_OK, "NOOP")
    assert inbox(office, ALICE) == []
    real = b"Subject: real\r\n\r\nbody\r\n.\r\n"
    for split in range(len(real) - 6, len(real)):
        c.transact(R.R250_SENDER_OK, "MAIL FROM:<someone@remote.test>")
        c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
        c.transact(R.R354_START_DATA, "DATA")
        c.send_raw(real[:split])
        time.sleep(0.005)
        c.send_raw(real[split:])
        c.expect("250 *")
    assert len(inbox(office, ALICE)) == 6


# -- password guessing ----------------------------------------------------------------------

@pytest.mark.in_process(reason="loopback is trusted: it makes the server's authenticator distrust it")
def test_guessing_is_slowed_then_blocked_everywhere_until_the_admin_unblocks(make_server, monkeypatch):
    server = make_server(auth={"block_after": 6, "fail_delay_max": 0.8, "block_seconds": 600})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    # Loopback is trusted not to be blocked wholesale (a webmail on this box); the
    # attacker here stands for an internet address, as the tests can only use loopback.
    monkeypatch.setattr(server.ctx.auth, "is_trusted", lambda ip: False)
    wrong = "Tr0ub4dor&3"
    delays = []

    def timed(fn):
        start = time.monotonic()
        fn()
        delays.append(time.monotonic() - start)

    imap = Conversation.open(server, "imaps")
    pop3 = Pop3Wire.open(server, "pop3s")
    smtp = Wire.open(server, "smtps")
    smtp.ehlo()
    token = base64.b64encode(f"\0{ALICE}\0{wrong}".encode()).decode()
    for round_ in range(2):  # the counter is shared by all protocols
        timed(lambda: imap.transact("NO", f'LOGIN {ALICE} "{wrong}"'))
        timed(lambda: (pop3.transact(f"USER {ALICE}", "+OK*"), pop3.transact(f"PASS {wrong}", P.ERR_AUTH_FAILED)))
        timed(lambda: smtp.transact(R.R535_AUTH_FAILED, f"AUTH PLAIN {token}"))
    tried("password guesses", 6)
    # 0.1 s after the first failure, doubling up to fail_delay_max (each also pays the hash)
    assert delays[0] >= 0.1 and min(delays[3:]) >= 0.8 and min(delays[3:]) - delays[0] >= 0.5, delays

    # Blocked: even the right password is refused, at once, on every protocol.
    right = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    start = time.monotonic()
    imap.transact("NO", f'LOGIN {ALICE} "{PASSWORD}"')
    assert b"[UNAVAILABLE]" in imap.last
    pop3.transact(f"USER {ALICE}", "+OK*")
    pop3.transact(f"PASS {PASSWORD}", P.ERR_AUTH_BLOCKED)
    smtp.transact(R.R454_AUTH_TEMPORARY, f"AUTH PLAIN {right}")
    assert time.monotonic() - start < 1.0
    tried("logins while blocked", 3)

    admin = AdminClient(server.data_dir / "admin.sock")
    [entry] = [b for b in admin.blocked() if b["ip"] == "127.0.0.1"]
    assert entry["until"] > time.time() + 500
    assert admin.unblock("127.0.0.1")
    imap.transact("OK", f'LOGIN {ALICE} "{PASSWORD}"')
    smtp.transact(R.R235_AUTH_OK, f"AUTH PLAIN {right}")


# -- IMAP literal floods and deep nesting ----------------------------------------------------

def _bombs():
    yield "literal flood", b"a1 LOGIN " + b" ".join(b"{10+}\r\n0123456789" for _ in range(20000)) + b"\r\n"
    yield "huge literal", b"a1 LOGIN {18446744073709551616+}\r\nx\r\n"
    yield "nested parentheses", b"a1 ID " + b"(" * 10000 + b")" * 10000 + b"\r\n"
    yield "10 MB line", b"a1 LOGIN " + b"x" * 10_000_000 + b"\r\n"


@pytest.mark.parametrize("logged_in", [False, True], ids=["before-login", "after-login"])
def test_literal_floods_and_deep_nesting_get_an_error_and_others_are_served(office, logged_in):
    bombs = list(_bombs())
    if logged_in:
        bombs += [
            ("nested SEARCH", b"a1 SEARCH " + b"(" * 10000 + b"ALL" + b")" * 10000 + b"\r\n"),
            ("NOT chain", b"a1 SEARCH " + b"NOT " * 10000 + b"ALL\r\n"),
            ("OR chain", b"a1 SEARCH " + b"OR ALL " * 10000 + b"ALL\r\n"),
            ("deep section", b"a1 FETCH 1 BODY[" + b"1." * 5000 + b"1]\r\n"),
            ("sequence flood", b"a1 FETCH " + b",".join(b"%d" % n for n in range(1, 200000)) + b" FLAGS\r\n"),
            ("APPEND literal flood", b"a1 APPEND INBOX " + b"{1+}\r\nx " * 20000 + b"{1+}\r\nx\r\n"),
        ]
    deliver(office, ALICE, message("keep"))
    for name, bomb in bombs:
        conv = session(office, ALICE) if logged_in else Conversation.open(office, "imap")
        if logged_in:
            conv.transact("OK", "SELECT INBOX")
        start = time.monotonic()
        conv.sock.sendall(bomb)
        untagged, tagged = _answer(conv)
        assert tagged is None or tagged.split(b" ")[1] in (b"BAD", b"NO", b"OK"), (name, tagged)
        assert time.monotonic() - start < 5, name
        # Either the session survived and stays in step, or it closed after refusing the
        # bomb (a refused non-synchronising literal leaves bytes it cannot frame; closing
        # on unread bytes sends a reset, which may overtake its BYE).
        after = _after_noop(conv)
        assert after[-1].startswith(b"z OK") or after[-1] == b"<closed>", (name, after[-3:])
        tried("IMAP bombs")
        other = session(office, BOB)
        other.transact("OK", "SELECT INBOX")
    assert len(inbox(office, ALICE)) == 1


def _after_noop(conv: Conversation) -> list[bytes]:
    """Send NOOP; the lines up to its answer, or up to the close (then "<closed>")."""
    lines = []
    try:
        conv.send("z NOOP")
        while not (lines and lines[-1].startswith(b"z ")):
            lines.append(conv.line())
    except (ConnectionError, OSError):
        lines.append(b"<closed>")
    return lines


def _answer(conv: Conversation):
    """The tagged answer to a1 and the untagged lines before it; None if the server closed."""
    untagged = []
    conv.sock.settimeout(10)
    try:
        while True:
            line = conv.line()
            if line.startswith(b"a1 ") or (line.startswith(b"* BAD") and not untagged):
                return untagged, line if line.startswith(b"a1 ") else None
            untagged.append(line)
    except (ConnectionError, OSError):
        return untagged, None


# -- isolation between users ----------------------------------------------------------------

def test_alice_cannot_reach_bobs_mail_by_any_trick(office):
    bob = office.store.get_user(BOB)
    for n in range(3):
        deliver(office, BOB, message(f"bob-secret-{n}", body=f"bob-secret-body-{n}\r\n"))
    deliver(office, ALICE, message("alice's own"))
    bob_box = office.store.get_mailbox(bob.id, "INBOX")
    bob_uids = [r.uid for r in office.store.list_messages(bob_box.id)]
    bob_mailboxes = sorted(m.name for m in office.store.list_mailboxes(bob.id))

    conv = session(office, ALICE)
    said = []
    names = [f"{BOB}/INBOX", "bob/INBOX", "Other Users/bob/INBOX", "#shared/bob", "~bob", "../bob/INBOX",
             "INBOX/../../bob@example.org/INBOX", "INBOX' OR '1'='1", "INBOX\"; DROP TABLE messages; --",
             f"{bob_box.id}", f"#{bob_box.id}", "%", "*"]
    for name in names:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        for command in (f'SELECT "{quoted}"', f'STATUS "{quoted}" (MESSAGES)', f'GETQUOTAROOT "{quoted}"',
                        f'APPEND "{quoted}" {{7+}}\r\nplanted', f'DELETE "{quoted}"', f'RENAME "{quoted}" mine'):
            tag = conv.next_tag()
            conv.send(f"{tag} {command}")
            lines, tagged = conv.read_until(tag)
            said += lines + [tagged]
            tried("isolation tricks")
    conv.transact("OK", "SELECT INBOX")
    for command in [f"UID FETCH {','.join(map(str, bob_uids))} (BODY[])", "FETCH 1:* (BODY[])",
                    "UID FETCH 1:4294967295 (BODY[])", "SEARCH TEXT bob-secret", "UID SEARCH ALL"]:
        said += conv.transact("OK", command)
        tried("isolation tricks")
    for target in (f"{BOB}/INBOX", "../bob/INBOX", "~bob/INBOX"):
        conv.transact("NO", f'COPY 1 "{target}"')
        conv.transact("NO", f'MOVE 1 "{target}"')
        tried("isolation tricks", 2)
    # AUTHENTICATE as alice on behalf of bob (SASL authzid) is refused.
    other = Conversation.open(office, "imaps")
    token = base64.b64encode(f"{BOB}\0{ALICE}\0{PASSWORD}".encode()).decode()
    other.transact("NO", f"AUTHENTICATE PLAIN {token}")
    tried("isolation tricks")

    assert not any(b"bob-secret" in line for line in said)
    assert [r.uid for r in office.store.list_messages(bob_box.id)] == bob_uids
    assert sorted(m.name for m in office.store.list_mailboxes(bob.id)) == bob_mailboxes
    assert all(b"planted" not in raw and b"alice's own" not in raw for raw in inbox(office, BOB))
