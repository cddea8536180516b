"""POP3 conversations over real sockets: states, every verb, errors, limits, STLS, SASL."""

import base64

import pytest

from appliance.pop3 import replies as R
from appliance.store.events import MailboxChanged
from appliance.store.models import Delivery
from tests.conftest import PASSWORD, listed_session
from tests.protocol.mta_helpers import wait_until
from tests.protocol.pop3_wire import Pop3Wire, deliver, inbox, wait_for_pop3_sessions_to_end

ALICE = "alice@example.org"
MSG1 = b"From: bob@example.org\r\nSubject: one\r\n\r\nfirst line\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast\r\n"
MSG2 = b"From: bob@example.org\r\nSubject: two\r\n\r\nno final line ending"
MSG3 = b"From: carol@example.org\r\nSubject: three\r\n\r\n" + b"x" * 70 + b"\r\n" * 3


@pytest.fixture
def alice(server):
    user = server.add_user(ALICE)
    deliver(server, user, MSG1, MSG2, MSG3)
    return user


def plain(raw: bytes) -> bytes:
    """A message as RETR must return it: CRLF lines, a final CRLF."""
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


def login(server, listener="pop3s"):
    return Pop3Wire.logged_in(server, ALICE, PASSWORD, listener)


# -- AUTHORIZATION -------------------------------------------------------------------


def test_capa_on_the_plain_port_offers_stls_but_no_passwords(server):
    c = Pop3Wire.open(server, "pop3")
    c.transact("CAPA", "+OK *")
    caps = c.multiline()
    assert b"STLS" in caps and b"RESP-CODES" in caps and b"PIPELINING" in caps
    assert b"TOP" in caps and b"UIDL" in caps and b"AUTH-RESP-CODE" in caps
    assert b"USER" not in caps and b"SASL PLAIN" not in caps
    assert any(cap.startswith(b"IMPLEMENTATION ") for cap in caps)


def test_capa_inside_tls_offers_user_and_sasl(server):
    c = Pop3Wire.open(server, "pop3s")
    c.transact("CAPA", "+OK *")
    caps = c.multiline()
    assert b"USER" in caps and b"SASL PLAIN" in caps and b"STLS" not in caps


def test_capa_after_login_lists_transaction_capabilities(server, alice):
    c = login(server)
    c.transact("CAPA", "+OK *")
    caps = c.multiline()
    assert b"UIDL" in caps and b"TOP" in caps and b"USER" not in caps


def test_passwords_are_refused_without_tls_even_on_loopback(server, alice):
    c = Pop3Wire.open(server, "pop3")
    c.transact(f"USER {ALICE}", R.ERR_TLS_REQUIRED)
    c.transact("AUTH PLAIN " + base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode(), R.ERR_TLS_REQUIRED)
    c.transact("AUTH PLAIN", R.ERR_TLS_REQUIRED)
    c.transact("AUTH", R.ERR_TLS_REQUIRED)


def test_plaintext_allowed_by_config_for_loopback(make_server):
    server = make_server(auth={"allow_plaintext": True})
    server.add_user(ALICE)
    c = Pop3Wire.open(server, "pop3")
    c.transact(f"USER {ALICE}", R.OK_USER)
    c.transact(f"PASS {PASSWORD}", R.OK_LOGGED_IN)


def test_stls_then_login(server, alice):
    c = Pop3Wire.open(server, "pop3")
    c.transact("STLS", R.OK_STLS)
    c.starttls()
    c.transact(f"USER {ALICE}", R.OK_USER)
    c.transact(f"PASS {PASSWORD}", R.OK_LOGGED_IN)
    c.transact("STAT", "+OK 3 *")


def test_stls_pipelined_command_is_never_executed(server, alice):
    c = Pop3Wire.open(server, "pop3")
    # Both lines in one packet: the USER was sent in plaintext and must be dropped.
    c.send_raw(f"STLS\r\nUSER {ALICE}\r\n".encode())
    c.expect(R.OK_STLS)
    c.starttls()
    c.transact(f"PASS {PASSWORD}", R.ERR_NEED_USER)
    c.transact("NOOP", R.ERR_WRONG_STATE)  # still not logged in


def test_stls_inside_tls_is_refused(server):
    c = Pop3Wire.open(server, "pop3s")
    c.transact("STLS", R.ERR_TLS_ACTIVE)
    c.transact("CAPA", "+OK *")  # the session goes on


def test_wrong_password(server, alice):
    c = Pop3Wire.open(server)
    c.transact(f"USER {ALICE}", R.OK_USER)
    c.transact("PASS wrong", R.ERR_AUTH_FAILED)
    # RFC 1939: after a failed PASS the client starts again with USER.
    c.transact(f"PASS {PASSWORD}", R.ERR_NEED_USER)
    c.transact(f"USER {ALICE}", R.OK_USER)
    c.transact(f"PASS {PASSWORD}", R.OK_LOGGED_IN)


def test_unknown_user_looks_like_a_wrong_password(server):
    c = Pop3Wire.open(server)
    c.transact("USER nobody@example.org", R.OK_USER)
    c.transact("PASS whatever", R.ERR_AUTH_FAILED)


def test_pass_without_user(server):
    c = Pop3Wire.open(server)
    c.transact(f"PASS {PASSWORD}", R.ERR_NEED_USER)


def test_blocked_address_is_told_to_come_back_later(server, alice):
    server.admin.block("127.0.0.1", 60)
    c = Pop3Wire.open(server)
    c.transact(f"USER {ALICE}", R.OK_USER)
    c.transact(f"PASS {PASSWORD}", R.ERR_AUTH_BLOCKED)


def plain_b64(authzid: str, authcid: str, password: str) -> str:
    return base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()


def test_auth_plain_with_initial_response(server, alice):
    c = Pop3Wire.open(server)
    c.transact("AUTH PLAIN " + plain_b64("", ALICE, PASSWORD), R.OK_LOGGED_IN)
    c.transact("STAT", "+OK 3 *")


def test_auth_plain_with_continuation(server, alice):
    c = Pop3Wire.open(server)
    c.transact("AUTH PLAIN", R.AUTH_CONTINUE)
    c.transact(plain_b64(ALICE, ALICE, PASSWORD), R.OK_LOGGED_IN)


def test_auth_plain_cancelled(server, alice):
    c = Pop3Wire.open(server)
    c.transact("AUTH PLAIN", R.AUTH_CONTINUE)
    c.transact("*", R.ERR_AUTH_CANCELLED)
    c.transact("NOOP", R.ERR_WRONG_STATE)


def test_auth_plain_wrong_password_and_bad_data(server, alice):
    c = Pop3Wire.open(server)
    c.transact("AUTH PLAIN " + plain_b64("", ALICE, "nope"), R.ERR_AUTH_FAILED)
    c.transact("AUTH PLAIN !!!notbase64", R.ERR_BAD_SASL)
    c.transact("AUTH PLAIN " + base64.b64encode(b"no nuls").decode(), R.ERR_BAD_SASL)
    c.transact("AUTH PLAIN =", R.ERR_BAD_SASL)


def test_auth_plain_cannot_act_as_another_user(server, alice):
    server.add_user("bob@example.org")
    c = Pop3Wire.open(server)
    c.transact("AUTH PLAIN " + plain_b64("bob@example.org", ALICE, PASSWORD), R.ERR_AUTH_FAILED)


def test_auth_lists_mechanisms_and_refuses_others(server):
    c = Pop3Wire.open(server)
    c.transact("AUTH", "+OK *")
    assert c.multiline() == [b"PLAIN"]
    c.transact("AUTH LOGIN", R.ERR_UNSUPPORTED_MECHANISM)
    c.transact("AUTH CRAM-MD5", R.ERR_UNSUPPORTED_MECHANISM)


def test_transaction_verbs_are_refused_before_login(server):
    for command in ["STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL", "UIDL 1"]:
        c = Pop3Wire.open(server)
        c.transact(command, R.ERR_WRONG_STATE)
        c.close()


def test_authorization_verbs_are_refused_after_login(server, alice):
    c = login(server)
    for command in [f"USER {ALICE}", f"PASS {PASSWORD}", "AUTH PLAIN", "STLS"]:
        c.transact(command, R.ERR_WRONG_STATE)
    c.transact("NOOP", R.OK)


def test_quit_before_login(server):
    c = Pop3Wire.open(server)
    c.transact("QUIT", R.OK_BYE)
    assert c.closed()


# -- TRANSACTION: reading -----------------------------------------------------------


def test_stat_and_list_report_the_octets_retr_sends(server, alice):
    c = login(server)
    sizes = [len(plain(m)) for m in (MSG1, MSG2, MSG3)]
    c.transact("STAT", R.stat(3, sum(sizes)))
    c.transact("LIST", R.scan_listing([])[0].replace(b"0 messages (0", b"3 messages (%d" % sum(sizes)))
    assert c.multiline() == [b"1 %d" % sizes[0], b"2 %d" % sizes[1], b"3 %d" % sizes[2]]
    c.transact("LIST 2", R.scan_line(2, sizes[1]))
    for number, raw in enumerate((MSG1, MSG2, MSG3), start=1):
        c.transact(f"RETR {number}", R.retr_line(len(plain(raw))))
        body = c.multiline()
        assert b"\r\n".join(body) + b"\r\n" == plain(raw)


def test_retr_byte_stuffs_lines_that_start_with_a_dot(server, alice):
    c = login(server)
    c.send("RETR 1")
    c.expect("+OK *")
    wire = []
    while (line := c.line()) != b".":
        wire.append(line)
    assert b"..starts with a dot" in wire and b"...two dots" in wire and b".." in wire
    assert b".starts with a dot" not in wire


def test_top(server, alice):
    c = login(server)
    c.transact("TOP 1 0", R.OK_TOP)
    assert c.multiline() == [b"From: bob@example.org", b"Subject: one", b""]
    c.transact("TOP 1 2", R.OK_TOP)
    assert c.multiline()[-2:] == [b"first line", b".starts with a dot"]
    c.transact("TOP 2 100", R.OK_TOP)
    assert c.multiline()[-1] == b"no final line ending"


def test_uidl_is_stable_across_sessions_and_expunges(server, alice):
    c = login(server)
    c.transact("UIDL", "+OK *")
    first = c.multiline()
    assert len(first) == 3 and len({line.split()[1] for line in first}) == 3
    c.transact("UIDL 2", b"+OK " + first[1])
    c.transact("QUIT", R.OK_BYE)
    # Message 1 goes away (as IMAP EXPUNGE would do it); numbers shift, UIDs stay.
    mailbox = server.store.get_mailbox(alice.id, "INBOX")
    server.store.delete_messages(mailbox.id, [inbox(server, alice)[0].uid])
    c = login(server)
    c.transact("UIDL", "+OK *")
    second = c.multiline()
    assert [line.split()[1] for line in second] == [line.split()[1] for line in first[1:]]
    assert [line.split()[0] for line in second] == [b"1", b"2"]


def test_noop(server, alice):
    c = login(server)
    c.transact("NOOP", R.OK)


BAD_INPUT = [
    ("RETR 0", R.ERR_NO_SUCH_MESSAGE),
    ("RETR 4", R.ERR_NO_SUCH_MESSAGE),
    ("RETR 99999999999999999999", R.ERR_NO_SUCH_MESSAGE),
    ("LIST 4", R.ERR_NO_SUCH_MESSAGE),
    ("UIDL 0", R.ERR_NO_SUCH_MESSAGE),
    ("TOP 9 1", R.ERR_NO_SUCH_MESSAGE),
    ("DELE 4", R.ERR_NO_SUCH_MESSAGE),
    ("RETR", R.ERR_BAD_ARGUMENTS),
    ("RETR one", R.ERR_BAD_NUMBER),
    ("DELE -1", R.ERR_BAD_NUMBER),
    ("TOP 1", R.ERR_BAD_ARGUMENTS),
    ("TOP 1 x", R.ERR_BAD_NUMBER),
    ("STAT now", R.ERR_BAD_ARGUMENTS),
    ("XTND XMIT", R.ERR_UNKNOWN_COMMAND),
    ("APOP alice 1234", R.ERR_UNKNOWN_COMMAND),
    ("", R.ERR_UNKNOWN_COMMAND),
]


def test_bad_input_gets_err_and_the_session_goes_on(make_server):
    server = make_server(pop3={"max_errors": 100})  # keep the error limit out of the way
    deliver(server, server.add_user(ALICE), MSG1, MSG2, MSG3)
    c = login(server)
    for command, reply in BAD_INPUT:
        c.transact(command, reply)
        c.transact("STAT", "+OK 3 *")


def test_binary_garbage_and_long_lines(server, alice):
    c = login(server)
    c.transact(b"\x00\xff\xfe garbage", R.ERR_UNKNOWN_COMMAND)
    c.transact(b"NOOP " + b"x" * 100_000, R.ERR_LINE_TOO_LONG)
    c.transact("NOOP", R.OK)


# -- TRANSACTION: deleting ----------------------------------------------------------


def test_dele_marks_and_rset_unmarks(server, alice):
    c = login(server)
    c.transact("DELE 1", R.OK_DELETED)
    c.transact("DELE 1", R.ERR_MESSAGE_DELETED)
    c.transact("RETR 1", R.ERR_MESSAGE_DELETED)
    c.transact("LIST 1", R.ERR_MESSAGE_DELETED)
    c.transact("STAT", "+OK 2 *")
    c.transact("LIST", "+OK 2 messages *")
    assert [line.split()[0] for line in c.multiline()] == [b"2", b"3"]
    c.transact("UIDL", "+OK *")
    assert [line.split()[0] for line in c.multiline()] == [b"2", b"3"]
    c.transact("RSET", "+OK Maildrop has 3 messages *")
    c.transact("RETR 1", "+OK *")
    c.multiline()
    c.transact("QUIT", R.OK_BYE)
    assert len(inbox(server, alice)) == 3


def test_quit_deletes_the_marked_messages(server, alice):
    c = login(server)
    c.transact("DELE 1", R.OK_DELETED)
    c.transact("DELE 3", R.OK_DELETED)
    c.transact("QUIT", R.OK_BYE)
    assert c.closed()
    rows = inbox(server, alice)
    assert len(rows) == 1
    assert server.store.get_raw(rows[0].blob_id) == MSG2


def test_a_dropped_connection_deletes_nothing(server, alice):
    c = login(server)
    c.transact("DELE 1", R.OK_DELETED)
    c.transact("DELE 2", R.OK_DELETED)
    c.close()
    wait_for_pop3_sessions_to_end(server)
    assert len(inbox(server, alice)) == 3


def test_deleted_mail_goes_to_trash_when_configured(make_server):
    server = make_server(pop3={"deleted_to_trash": True})
    server.store.add_domain("example.org")
    user = server.add_user(ALICE)
    deliver(server, user, MSG1, MSG2)
    c = login(server)
    c.transact("DELE 2", R.OK_DELETED)
    c.transact("QUIT", R.OK_BYE)
    assert len(inbox(server, user)) == 1
    trash = server.store.get_mailbox(user.id, "Trash")
    moved = server.store.list_messages(trash.id)
    assert [server.store.get_raw(row.blob_id) for row in moved] == [MSG2]


def test_retr_sets_seen_for_imap_clients(server, alice):
    c = login(server)
    c.transact("RETR 2", "+OK *")
    c.multiline()
    c.transact("TOP 3 1", R.OK_TOP)  # TOP is not reading the message
    c.multiline()
    c.transact("QUIT", R.OK_BYE)
    seen = ["\\Seen" in row.flags for row in inbox(server, alice)]
    assert seen == [False, True, False]


@pytest.mark.in_process(reason="it replaces a method of the server's store")
def test_retr_writes_seen_only_for_messages_unseen_at_login(server, alice, monkeypatch):
    mailbox = server.store.get_mailbox(alice.id, "INBOX")
    rows = inbox(server, alice)
    server.store.store_flags(mailbox.id, [rows[0].uid], "add", ["\\Seen", "\\Flagged"])
    written = []
    store_flags = server.store.store_flags
    monkeypatch.setattr(server.store, "store_flags", lambda mb, uids, *a: written.append(list(uids)) or store_flags(mb, uids, *a))
    c = login(server)
    for n in (1, 2):
        c.transact(f"RETR {n}", "+OK *")
        c.multiline()
    c.transact("QUIT", R.OK_BYE)
    assert written == [[rows[1].uid]]  # message 1 had it already: no write for it
    assert [("\\Seen" in row.flags) for row in inbox(server, alice)] == [True, True, False]


def test_retr_sets_seen_even_when_the_client_drops(server, alice):
    c = login(server)
    c.transact("RETR 1", "+OK *")
    c.multiline()
    c.close()
    # A short session on another worker may end before it is ever listed: wait for the flag.
    wait_until(lambda: "\\Seen" in inbox(server, alice)[0].flags, what="\\Seen after the client dropped")


# -- other sessions -------------------------------------------------------------------


def test_messages_removed_meanwhile_answer_err_and_the_rest_works(server, alice):
    c = login(server)
    rows = inbox(server, alice)
    mailbox = server.store.get_mailbox(alice.id, "INBOX")
    # IMAP: STORE +FLAGS \Deleted, then EXPUNGE, while POP3 holds its snapshot.
    server.store.store_flags(mailbox.id, [rows[0].uid, rows[1].uid], "add", ["\\Deleted"])
    server.store.expunge(mailbox.id)
    c.transact("RETR 1", R.ERR_MESSAGE_GONE)
    c.transact("DELE 2", R.ERR_MESSAGE_GONE)
    c.transact("RETR 1", R.ERR_MESSAGE_GONE)
    c.transact("TOP 3 0", R.OK_TOP)
    c.multiline()
    c.transact("STAT", R.stat(1, len(plain(MSG3))))
    c.transact("DELE 3", R.OK_DELETED)
    c.transact("QUIT", R.OK_BYE)
    assert inbox(server, alice) == []


def test_a_message_read_ahead_then_expunged_elsewhere_answers_err(server, alice):
    c = login(server)
    c.transact("RETR 1", "+OK *")  # reads message 2 ahead with it
    c.multiline()
    mailbox = server.store.get_mailbox(alice.id, "INBOX")
    with server.store.subscribe(alice.id) as heard:
        server.store.delete_messages(mailbox.id, [inbox(server, alice)[1].uid])  # message 2
        # The session subscribed at login, before us: once we hear the expunge, so has it.
        while not (isinstance(event := heard.get(timeout=10), MailboxChanged) and event.kind == "expunge"):
            assert event is not None, "no expunge event"
    c.transact("RETR 2", R.ERR_MESSAGE_GONE)
    c.transact("RETR 3", "+OK *")
    assert c.multiline()[1] == b"Subject: three"


def test_reading_a_long_maildrop_in_order_sends_each_message_exactly(server):
    user = server.add_user("dave@example.org")
    raws = [b"Subject: m%d\r\n\r\n%s\r\n.dot line %d\r\n" % (n, b"x" * (n * 97 % 3000), n) for n in range(1, 81)]
    deliver(server, user, *raws)
    c = Pop3Wire.logged_in(server, "dave@example.org", PASSWORD)
    c.transact("DELE 5", R.OK_DELETED)
    c.transact("DELE 40", R.OK_DELETED)
    for n in [*range(1, 81), 3, 70, 2]:  # in order, then jumps back
        if n in (5, 40):
            c.transact(f"RETR {n}", R.ERR_MESSAGE_DELETED)
            continue
        c.transact(f"RETR {n}", R.retr_line(len(raws[n - 1])))
        assert b"\r\n".join(c.multiline()) + b"\r\n" == raws[n - 1]
    c.transact("TOP 7 0", R.OK_TOP)
    assert c.multiline() == [b"Subject: m7", b""]


def test_new_mail_appears_only_in_the_next_session(server, alice):
    c = login(server)
    deliver(server, alice, b"Subject: late\r\n\r\nhello\r\n")
    c.transact("STAT", "+OK 3 *")
    c.transact("RETR 4", R.ERR_NO_SUCH_MESSAGE)
    c.transact("QUIT", R.OK_BYE)
    c = login(server)
    c.transact("STAT", "+OK 4 *")


def test_two_sessions_on_one_maildrop(server, alice):
    # Concurrent sessions are allowed (no [IN-USE]); both may delete the same message.
    a, b = login(server), login(server)
    a.transact("DELE 1", R.OK_DELETED)
    b.transact("DELE 1", R.OK_DELETED)
    b.transact("DELE 2", R.OK_DELETED)
    a.transact("QUIT", R.OK_BYE)
    b.transact("QUIT", R.OK_BYE)
    rows = inbox(server, alice)
    assert [server.store.get_raw(row.blob_id) for row in rows] == [MSG3]


def test_a_user_sees_only_their_own_maildrop(server, alice):
    bob = server.add_user("bob@example.org")
    server.store.deliver(b"Subject: for bob\r\n\r\nsecret\r\n", [Delivery(bob.id)])
    c = Pop3Wire.logged_in(server, "bob@example.org", PASSWORD)
    c.transact("STAT", "+OK 1 *")
    c.transact("RETR 2", R.ERR_NO_SUCH_MESSAGE)


# -- pipelining and limits ------------------------------------------------------------


def test_pipelined_commands_are_answered_in_order(server, alice):
    c = Pop3Wire.open(server)
    c.send_raw(f"USER {ALICE}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST 1\r\nUIDL 1\r\nBOGUS\r\nNOOP\r\n".encode())
    c.expect(R.OK_USER)
    c.expect(R.OK_LOGGED_IN)
    c.expect("+OK 3 *")
    c.expect("+OK 1 *")
    c.expect("+OK 1 *")
    c.expect(R.ERR_UNKNOWN_COMMAND)
    c.expect(R.OK)


def test_too_many_errors_close_the_session(make_server):
    server = make_server(pop3={"max_errors": 3})
    c = Pop3Wire.open(server)
    c.transact("BOGUS", R.ERR_UNKNOWN_COMMAND)
    c.transact("STAT", R.ERR_WRONG_STATE)
    c.transact("RETR x", R.ERR_BAD_NUMBER)
    c.expect(R.ERR_TOO_MANY_ERRORS)
    assert c.closed()


def test_failed_logins_count_as_errors(make_server):
    server = make_server(pop3={"max_errors": 2}, auth={"fail_delay_max": 0.0})
    c = Pop3Wire.open(server)
    for _ in range(2):
        c.transact("USER someone@example.org", R.OK_USER)
        c.transact("PASS guess", R.ERR_AUTH_FAILED)
    c.expect(R.ERR_TOO_MANY_ERRORS)
    assert c.closed()


def test_idle_timeout(make_server):
    server = make_server(limits={"idle_timeout_unauthenticated": 0.5}, pop3={"idle_timeout": 0.5})
    c = Pop3Wire.open(server)
    c.expect(R.ERR_IDLE_TIMEOUT)
    assert c.closed()


def test_the_default_idle_timeout_is_at_least_ten_minutes(server):
    assert server.config.pop3.idle_timeout >= 600


def test_the_server_keeps_serving_others_after_a_misbehaving_client(server, alice):
    bad = Pop3Wire.open(server)
    bad.send_raw(b"\xff" * 5000 + b"\r\n" + b"A" * 200_000)
    good = login(server)
    good.transact("STAT", "+OK 3 *")


def test_a_pipelined_batch_of_large_messages_arrives_whole(server):
    user = server.add_user(ALICE)
    bodies = [b"Subject: big %d\r\n\r\n" % i + (b"%d" % i) * 400_000 + b"\r\n" for i in range(5)]
    deliver(server, user, *bodies)
    c = login(server)
    c.send_raw(b"".join(b"RETR %d\r\n" % n for n in range(1, 6)) + b"NOOP\r\n")
    for raw in bodies:
        c.expect(R.retr_line(len(raw)))
        assert b"\r\n".join(c.multiline()) + b"\r\n" == raw
    c.expect(R.OK)


def test_the_admin_view_shows_the_user_and_never_the_password(server, alice):
    c = Pop3Wire.open(server)
    c.transact(f"USER {ALICE}", R.OK_USER)
    c.transact(f"PASS {PASSWORD}", R.OK_LOGGED_IN)
    listed_session(server, "pop3s", last_command="PASS ***", user=ALICE, state="transaction")
    c.transact("AUTH PLAIN", R.ERR_WRONG_STATE)
    listed_session(server, "pop3s", last_command="AUTH PLAIN")
    c.transact("RETR 1", "+OK *")
    c.multiline()
    listed_session(server, "pop3s", last_command="RETR 1")


def test_auth_exchange_answers_are_never_recorded(server, alice):
    c = Pop3Wire.open(server)
    c.transact("AUTH PLAIN " + plain_b64("", ALICE, PASSWORD), R.OK_LOGGED_IN)
    listed_session(server, "pop3s", last_command="AUTH ***")


@pytest.mark.in_process(reason="it replaces a method of the server's store")
def test_a_failed_deletion_is_reported_and_deletes_nothing(server, alice, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(server.store, "delete_messages", broken)
    c = login(server)
    c.transact("DELE 1", R.OK_DELETED)
    c.transact("QUIT", R.ERR_QUIT_FAILED)
    assert c.closed()
    assert len(inbox(server, alice)) == 3


@pytest.mark.in_process(reason="it replaces a method of the server's store")
def test_a_store_failure_is_a_temporary_error_and_the_session_goes_on(server, alice, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("I/O error")

    c = login(server)
    monkeypatch.setattr(server.store, "pop3_texts", broken)
    c.transact("RETR 1", R.ERR_SYS_TEMP)
    monkeypatch.undo()
    c.transact("RETR 1", "+OK *")
    assert c.multiline()[1] == b"Subject: one"
