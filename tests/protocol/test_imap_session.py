"""IMAP conversations: greeting, capabilities, STARTTLS, login, state gate, bad input."""

import base64
import socket
import ssl

import pytest

from appliance.imap.session import LEGAL, State
from tests.conftest import PASSWORD
from tests.protocol.imapconv import Conversation, session


def caps(conv: Conversation) -> set[bytes]:
    (line,) = conv.transact("OK", "CAPABILITY")
    return set(line.split()[2:])


def test_plain_port_offers_starttls_and_refuses_passwords(server):
    server.add_user("alice@example.org")
    conv = Conversation.open(server, "imap")
    assert conv.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1")
    offered = caps(conv)
    assert {b"STARTTLS", b"LOGINDISABLED", b"LITERAL+"} <= offered and b"AUTH=PLAIN" not in offered
    conv.transact("NO", f'LOGIN alice@example.org "{PASSWORD}"')
    assert b"PRIVACYREQUIRED" in conv.last
    conv.transact("NO", "AUTHENTICATE PLAIN " + base64.b64encode(f"\0alice@example.org\0{PASSWORD}".encode()).decode())


def test_starttls_discards_pipelined_bytes_then_login_works(server):
    server.add_user("alice@example.org")
    conv = Conversation.open(server, "imap")
    # the injected NOOP travels in plaintext after STARTTLS and must never be answered
    conv.send(b"s1 STARTTLS\r\ninjected NOOP\r\n")
    assert conv.line().startswith(b"s1 OK")
    conv.sock = server.tls_context().wrap_socket(conv.sock, server_hostname="mail.example.org")
    conv.buf = b""
    offered = caps(conv)
    assert b"AUTH=PLAIN" in offered and b"STARTTLS" not in offered and b"LOGINDISABLED" not in offered
    conv.transact("BAD", "STARTTLS")  # already in TLS
    conv.login("alice@example.org")
    untagged = conv.transact("OK", "NOOP")
    assert not any(b"injected" in line for line in untagged)


def test_plaintext_allowed_by_config_on_loopback(make_server):
    srv = make_server(auth={"allow_plaintext": True})
    srv.store.add_domain("example.org")
    srv.add_user("alice@example.org")
    conv = Conversation.open(srv, "imap")
    assert b"AUTH=PLAIN" in caps(conv)
    conv.login("alice@example.org")


def test_login_failures_and_success(server):
    server.add_user("alice@example.org")
    conv = Conversation.open(server)
    conv.transact("NO", 'LOGIN alice@example.org "wrong"')
    assert b"AUTHENTICATIONFAILED" in conv.last
    conv.transact("NO", 'LOGIN nobody@example.org "x"')
    # the password as a synchronising literal, the way imaplib sends odd passwords
    tag = conv.next_tag()
    conv.send(f"{tag} LOGIN alice@example.org {{{len(PASSWORD)}}}")
    assert conv.line().startswith(b"+")
    conv.send(PASSWORD)
    _, tagged = conv.read_until(tag)
    assert tagged.startswith(tag.encode() + b" OK [CAPABILITY IMAP4rev1")
    assert b"QRESYNC" in tagged
    conv.transact("NO", "LOGIN alice@example.org x")  # not allowed twice


def test_authenticate_plain_with_and_without_initial_response(server):
    server.add_user("alice@example.org")
    token = base64.b64encode(f"\0alice@example.org\0{PASSWORD}".encode()).decode()
    conv = Conversation.open(server)
    conv.transact("OK", f"AUTHENTICATE PLAIN {token}")
    conv = Conversation.open(server)
    conv.send("a1 AUTHENTICATE PLAIN")
    assert conv.line() == b"+ "
    conv.send(token)
    assert conv.line().startswith(b"a1 OK")
    conv = Conversation.open(server)
    conv.send("a1 AUTHENTICATE PLAIN")
    conv.line()
    conv.send("*")
    assert conv.line().startswith(b"a1 BAD")
    conv.send("a2 AUTHENTICATE PLAIN")
    conv.line()
    conv.send("A" * 100_000)
    assert conv.line().startswith(b"a2 BAD")
    wrong = base64.b64encode(b"bob@example.org\0alice@example.org\0" + PASSWORD.encode()).decode()
    conv.transact("NO", f"AUTHENTICATE PLAIN {wrong}")
    conv.transact("NO", "AUTHENTICATE CRAM-MD5")


def test_every_verb_is_refused_in_the_wrong_state(server):
    conv = Conversation.open(server)
    samples = {"SELECT": "SELECT INBOX", "FETCH": "FETCH 1 FLAGS", "UID FETCH": "UID FETCH 1 FLAGS",
               "IDLE": "IDLE", "STORE": "STORE 1 FLAGS ()", "EXPUNGE": "EXPUNGE", "CLOSE": "CLOSE",
               "LIST": 'LIST "" *', "APPEND": "APPEND INBOX {1+}\r\nx", "ENABLE": "ENABLE CONDSTORE"}
    for verb in LEGAL[State.SELECTED] - LEGAL[State.NOT_AUTHENTICATED]:
        conv.transact("NO", samples.get(verb, verb))
    conv.close()
    conv = session(server)
    for verb in LEGAL[State.SELECTED] - LEGAL[State.AUTHENTICATED]:
        conv.transact("NO", samples.get(verb, verb))
    for verb in ("LOGIN", "AUTHENTICATE", "STARTTLS"):
        conv.transact("NO", f"{verb} x y" if verb == "LOGIN" else verb)
    conv.transact("OK", "SELECT INBOX")
    conv.transact("NO", "ENABLE QRESYNC")  # RFC 5161: authenticated state only


def test_syntax_errors_get_bad_with_the_tag_and_the_session_survives(server):
    conv = session(server)
    conv.transact("OK", "SELECT INBOX")
    conv.transact("BAD", "FROB")
    conv.transact("BAD", "FETCH 0 FLAGS")
    conv.transact("BAD", "FETCH 1:99999999999 FLAGS")
    conv.transact("BAD", "SEARCH " + "(" * 50 + "ALL" + ")" * 50)
    conv.transact("BAD", "FETCH 1 (FLAGS")
    conv.send("\r")
    assert conv.line().startswith(b"* BAD")
    conv.transact("OK", "NOOP")


def test_literal_limits(server):
    conv = Conversation.open(server)
    # before login a big synchronising literal is refused without a continuation
    conv.send("a1 LOGIN {100000}")
    assert conv.line().startswith(b"a1 NO [TOOBIG]")
    conv.transact("OK", "NOOP")
    # a non-synchronising one is already on the wire: BAD, then the server closes
    conv.send("a2 LOGIN {100000+}")
    assert conv.line().startswith(b"a2 BAD [TOOBIG]")
    assert conv.line().startswith(b"* BYE")
    with pytest.raises((ConnectionError, OSError)):
        conv.line()
    # and another client is served as usual
    other = session(server)
    other.transact("OK", "NOOP")


def test_literal_bomb_after_login_is_bounded_by_message_size(make_server):
    srv = make_server(limits={"message_size": 10000})
    srv.store.add_domain("example.org")
    conv = session(srv)
    conv.send("a1 APPEND INBOX {20000}")
    assert conv.line().startswith(b"a1 NO [TOOBIG]")
    conv.send("a2 APPEND INBOX {5}")
    assert conv.line().startswith(b"+")
    conv.send("hello")
    assert conv.line().startswith(b"a2 OK [APPENDUID")


def test_too_many_bad_commands_end_the_session(make_server):
    srv = make_server(imap={"max_errors": 3})
    conv = Conversation.open(srv)
    for _ in range(2):
        conv.transact("BAD", "FROB")
    conv.send("x FROB")
    assert conv.line().startswith(b"x BAD")
    assert conv.line().startswith(b"* BYE")


def test_long_line_is_refused_with_its_tag_and_next_command_works(server):
    conv = Conversation.open(server)
    conv.send(b"a1 NOOP " + b"x" * 100_000)
    assert conv.line() == b"a1 BAD Command too long"  # the client is not left waiting for its tag
    conv.transact("OK", "NOOP")


def test_long_line_without_a_tag_ends_the_session(server):
    conv = Conversation.open(server)
    conv.send(b"(" * 100_000)
    assert conv.line().startswith(b"* BYE")


def test_id_noop_logout(server):
    conv = session(server)
    (line,) = conv.transact("OK", 'ID ("name" "pytest" "version" "1")')
    assert line == b'* ID ("name" "Kotakpos")'
    untagged = conv.transact("OK", "LOGOUT")
    assert untagged[0].startswith(b"* BYE")


def test_imaps_speaks_tls_from_the_start(server):
    raw = server.connect("imaps")
    with pytest.raises((ssl.SSLError, socket.timeout, ConnectionError, OSError)):
        raw.settimeout(2)
        raw.sendall(b"a1 CAPABILITY\r\n")
        data = raw.recv(100)
        assert not data.startswith(b"* OK")
        raise ConnectionError("no plaintext greeting, as expected")


def test_silent_clients_are_told_bye(make_server):
    srv = make_server(limits={"idle_timeout_unauthenticated": 0.3}, imap={"idle_timeout": 0.5})
    srv.store.add_domain("example.org")
    conv = Conversation.open(srv)
    assert conv.line().startswith(b"* BYE")
    conv = session(srv)
    conv.transact("OK", "SELECT INBOX")
    conv.send("i1 IDLE")
    assert conv.line() == b"+ idling"
    assert conv.line().startswith(b"* BYE")  # even while idling
