"""ManageSieve conversations over real sockets (RFC 5804): capabilities, STARTTLS, SASL PLAIN,
every script verb, every verb in the wrong state, limits and refusals."""

from __future__ import annotations

import base64
import logging
import time

import pytest

from appliance.managesieve import replies as R
from appliance.managesieve import session as managesieve_session
from appliance.config import load, with_overrides
from appliance.mda import scripts, sieve
from tests.conftest import PASSWORD
from tests.mda_helpers import folder, plain, send
from tests.protocol.imapconv import Conversation
from tests.protocol.managesieve_wire import SieveWire, literal, plain_token

ALICE, BOB = "alice@example.org", "bob@example.org"
SCRIPT = 'require "fileinto";\r\nif header :contains "subject" "invoice" {\r\n  fileinto "Bills";\r\n}\r\n'


@pytest.fixture
def alice(server):
    user = server.add_user(ALICE)
    server.store.create_mailbox(user.id, "Bills")  # where SCRIPT files
    return user


def login(server) -> SieveWire:
    return SieveWire.logged_in(server, ALICE, PASSWORD)


def caps(lines: list[bytes]) -> dict[str, str]:
    """Capability lines as {name: value}."""
    out = {}
    for line in lines:
        name, _, value = line.decode().partition(" ")
        out[name.strip('"')] = value.strip('"')
    return out


# -- capabilities and STARTTLS -------------------------------------------------------------


def test_greeting_lists_capabilities_and_no_password_mechanism_before_tls(server):
    c = SieveWire.open(server)
    got = caps(c.greeting)
    assert got["IMPLEMENTATION"] == "Kotakpos" and got["VERSION"] == "1.0" and "STARTTLS" in got
    assert got["SASL"] == ""  # passwords only inside TLS
    assert set(got["SIEVE"].split()) == set(sieve.CAPABILITIES)
    assert got["MAXREDIRECTS"] == str(sieve.MAX_REDIRECTS) and "UNAUTHENTICATE" in got
    c.send("CAPABILITY")
    assert c.until_ok() == c.greeting


def test_starttls_sends_the_capabilities_again_with_plain_and_without_starttls(server):
    c = SieveWire.tls(server)
    got = caps(c.capabilities)
    assert got["SASL"] == "PLAIN" and "STARTTLS" not in got and "OWNER" not in got
    c.transact("STARTTLS", R.NO_TLS_ACTIVE)


def test_bytes_pipelined_after_starttls_are_not_commands(server):
    c = SieveWire.open(server)
    c.send_raw(b"STARTTLS\r\nLOGOUT\r\n")
    c.expect(R.OK_BEGIN_TLS)
    c.starttls()
    c.until_ok()
    c.transact("NOOP", R.OK_DONE)  # the plaintext LOGOUT was dropped


def test_capability_after_login_names_the_owner(server, alice):
    c = login(server)
    c.send("CAPABILITY")
    got = caps(c.until_ok())
    assert got["OWNER"] == ALICE and got["SASL"] == "" and "STARTTLS" not in got


# -- AUTHENTICATE ----------------------------------------------------------------------------


def test_authenticate_is_refused_before_tls(server, alice):
    c = SieveWire.open(server)
    c.transact(f'AUTHENTICATE "PLAIN" "{plain_token(ALICE, PASSWORD)}"', R.NO_ENCRYPT_NEEDED)
    c.transact('AUTHENTICATE "PLAIN"', R.NO_ENCRYPT_NEEDED)


def test_authenticate_plain_with_a_continuation_quoted_or_literal(server, alice):
    c = SieveWire.tls(server)
    c.transact('AUTHENTICATE "PLAIN"', R.SASL_CONTINUE)
    c.transact(f'"{plain_token(ALICE, PASSWORD)}"', R.OK_LOGGED_IN)
    c.transact("UNAUTHENTICATE", R.OK_LOGGED_OUT)
    c.transact('authenticate "plain"', R.SASL_CONTINUE)
    c.transact(literal(plain_token(ALICE, PASSWORD)), R.OK_LOGGED_IN)


def test_authenticate_with_a_literal_initial_response(server, alice):
    c = SieveWire.tls(server)
    c.transact(b'AUTHENTICATE "PLAIN" ' + literal(plain_token(ALICE, PASSWORD)), R.OK_LOGGED_IN)


def test_authenticate_refusals(server, alice):
    c = SieveWire.tls(server)
    c.transact(f'AUTHENTICATE "PLAIN" "{plain_token(ALICE, "wrong")}"', R.NO_AUTH_FAILED)
    c.transact('AUTHENTICATE "PLAIN" "not base64!"', R.NO_BAD_SASL)
    c.transact('AUTHENTICATE "LOGIN"', R.NO_UNSUPPORTED_MECHANISM)
    c.transact('AUTHENTICATE "PLAIN"', R.SASL_CONTINUE)
    c.transact('"*"', R.NO_AUTH_CANCELLED)
    c.transact('AUTHENTICATE "PLAIN"', R.SASL_CONTINUE)
    c.transact("NOOP", R.NO_BAD_SASL)  # a command is no answer to a challenge
    as_bob = base64.b64encode(f"{BOB}\0{ALICE}\0{PASSWORD}".encode()).decode()
    c.transact(f'AUTHENTICATE "PLAIN" "{as_bob}"', R.NO_AUTH_FAILED)  # no acting as another user
    c.transact(f'AUTHENTICATE "PLAIN" "{plain_token(ALICE, PASSWORD)}"', R.OK_LOGGED_IN)


@pytest.mark.in_process(reason="it reads the server's log records (caplog)")
def test_the_password_never_reaches_the_log_or_the_session_list(server, alice, caplog):
    with caplog.at_level(logging.DEBUG):
        c = login(server)
        c.transact("NOOP", R.OK_DONE)
        [info] = [s for s in server.admin.sessions() if s["listener"] == "managesieve"]
    assert info["user"] == ALICE
    token = plain_token(ALICE, PASSWORD)
    assert f"managesieve login {ALICE}" in caplog.text  # the log was heard...
    assert token not in caplog.text and PASSWORD not in caplog.text  # ...and holds no secret
    c.transact('AUTHENTICATE "PLAIN"', R.NO_ALREADY_AUTHENTICATED)
    [info] = [s for s in server.admin.sessions() if s["listener"] == "managesieve"]
    assert info["last_command"] == "AUTHENTICATE ***"


# -- states -----------------------------------------------------------------------------------

AUTHENTICATED_ONLY = ['HAVESPACE "a" 10', 'PUTSCRIPT "a" "keep;"', "LISTSCRIPTS", 'SETACTIVE "a"', 'GETSCRIPT "a"',
                      'DELETESCRIPT "a"', 'RENAMESCRIPT "a" "b"', 'CHECKSCRIPT "keep;"', "UNAUTHENTICATE"]


def test_script_verbs_before_login_are_refused(server, alice):
    for c in (SieveWire.open(server), SieveWire.tls(server)):
        for command in AUTHENTICATED_ONLY:
            c.transact(command, R.NO_NOT_AUTHENTICATED)


def test_starttls_and_authenticate_after_login_are_refused(server, alice):
    c = login(server)
    c.transact("STARTTLS", R.NO_ALREADY_AUTHENTICATED)
    c.transact(f'AUTHENTICATE "PLAIN" "{plain_token(ALICE, PASSWORD)}"', R.NO_ALREADY_AUTHENTICATED)


def test_unauthenticate_returns_to_the_start(server, alice):
    c = login(server)
    c.transact('PUTSCRIPT "a" "keep;"', R.OK_STORED)
    c.transact("UNAUTHENTICATE", R.OK_LOGGED_OUT)
    c.transact("LISTSCRIPTS", R.NO_NOT_AUTHENTICATED)
    c.transact(f'AUTHENTICATE "PLAIN" "{plain_token(ALICE, PASSWORD)}"', R.OK_LOGGED_IN)
    c.send("LISTSCRIPTS")
    assert c.until_ok() == [b'"a"']


def test_unknown_and_malformed_commands(server, alice):
    c = login(server)
    c.transact("FROB", R.NO_UNKNOWN_COMMAND)
    c.transact("", R.NO_UNKNOWN_COMMAND)
    c.transact("LISTSCRIPTS extra", R.NO_BAD_ARGUMENTS)
    c.transact('GETSCRIPT', R.NO_BAD_ARGUMENTS)
    c.transact('GETSCRIPT a', R.NO_BAD_ARGUMENTS)  # an atom is not a string
    c.transact('GETSCRIPT "unterminated', R.NO_BAD_ARGUMENTS)
    c.transact('HAVESPACE "a" "10"', R.NO_BAD_ARGUMENTS)
    c.transact('HAVESPACE "a" 99999999999', R.NO_BAD_ARGUMENTS)
    c.transact('GETSCRIPT "a\\x"', R.NO_BAD_ARGUMENTS)  # only \" and \\ are escapes
    c.transact("NOOP", R.OK_DONE)


def test_logout_says_ok_and_closes(server):
    c = SieveWire.open(server)
    c.transact("LOGOUT", R.OK_LOGOUT)
    assert c.closed()


def test_too_many_errors_end_the_session(server):
    c = SieveWire.open(server)
    for _ in range(managesieve_session.MAX_ERRORS - 1):
        c.transact("FROB", R.NO_UNKNOWN_COMMAND)
    c.send("FROB")
    c.expect(R.NO_UNKNOWN_COMMAND)
    c.expect(R.BYE_TOO_MANY_ERRORS)
    assert c.closed()


def test_a_silent_client_is_told_and_disconnected(make_server):
    server = make_server(limits={"idle_timeout_unauthenticated": 0.5})
    c = SieveWire.open(server)
    c.expect(R.BYE_IDLE_TIMEOUT)
    assert c.closed()


def test_an_overlong_line_is_refused_and_the_session_goes_on(server):
    c = SieveWire.open(server)
    c.transact(b'NOOP "' + b"x" * (managesieve_session.LINE_LIMIT + 10) + b'"', R.NO_LINE_TOO_LONG)
    c.transact("NOOP", R.OK_DONE)


# -- scripts -----------------------------------------------------------------------------------


def test_put_list_activate_get_rename_delete(server, alice):
    c = login(server)
    c.transact(b'PUTSCRIPT "office" ' + literal(SCRIPT), R.OK_STORED)
    c.transact(b'PUTSCRIPT "sync" ' + literal("keep;\r\n", sync=True), R.OK_STORED)
    c.transact('PUTSCRIPT "quoted \\"name\\"" "discard;"', R.OK_STORED)
    c.send("LISTSCRIPTS")
    assert c.until_ok() == [b'"office"', b'"quoted \\"name\\""', b'"sync"']
    c.transact('SETACTIVE "office"', R.OK_ACTIVATED)
    c.send("LISTSCRIPTS")
    assert c.until_ok() == [b'"office" ACTIVE', b'"quoted \\"name\\""', b'"sync"']
    assert server.store.get_sieve(alice.id) == SCRIPT  # what the MDA now runs
    c.send('GETSCRIPT "office"')
    assert c.line() == b"{%d}\r\n" % len(SCRIPT) + SCRIPT.encode()
    c.expect(R.OK_GOT)
    c.transact('RENAMESCRIPT "office" "work"', R.OK_RENAMED)  # stays active
    c.transact('DELETESCRIPT "work"', R.NO_ACTIVE)
    c.transact('SETACTIVE ""', R.OK_DEACTIVATED)
    assert server.store.get_sieve(alice.id) == ""
    c.transact('DELETESCRIPT "work"', R.OK_DELETED)
    c.transact('DELETESCRIPT "quoted \\"name\\""', R.OK_DELETED)
    c.send("LISTSCRIPTS")
    assert c.until_ok() == [b'"sync"']


def test_the_script_activated_here_files_the_next_message(server, alice):
    c = login(server)
    c.transact(b'PUTSCRIPT "office" ' + literal(SCRIPT), R.OK_STORED)
    send(server, plain(subject="Invoice 1"))  # not active yet
    c.transact('SETACTIVE "office"', R.OK_ACTIVATED)
    send(server, plain(subject="Invoice 2"))
    c.transact('SETACTIVE ""', R.OK_DEACTIVATED)
    send(server, plain(subject="Invoice 3"))
    assert [b"Invoice 2" in m for m in folder(server, ALICE, "Bills")] == [True]
    assert len(folder(server, ALICE)) == 2


def test_putscript_replaces_and_keeps_active(server, alice):
    c = login(server)
    c.transact('PUTSCRIPT "a" "keep;"', R.OK_STORED)
    c.transact('SETACTIVE "a"', R.OK_ACTIVATED)
    c.transact('PUTSCRIPT "a" "discard;"', R.OK_STORED)
    assert server.store.get_sieve(alice.id) == "discard;"


def test_unicode_names_and_scripts(server, alice):
    c = login(server)
    c.transact('PUTSCRIPT "Libur Lebaran ☪" '.encode() + literal("# Selamat Idul Fitri ✨\r\nkeep;"), R.OK_STORED)
    c.send("LISTSCRIPTS")
    assert c.until_ok() == ['"Libur Lebaran ☪"'.encode()]
    c.send('GETSCRIPT "Libur Lebaran ☪"')
    assert c.line().endswith("# Selamat Idul Fitri ✨\r\nkeep;".encode())


def test_names_that_are_not_names_are_refused(server, alice):
    c = login(server)
    c.transact('PUTSCRIPT "" "keep;"', R.NO_BAD_NAME)
    c.transact(b'PUTSCRIPT "tab\there" "keep;"', R.NO_BAD_NAME)
    c.transact(b'PUTSCRIPT "\xff\xfe" "keep;"', R.NO_BAD_NAME)
    c.transact(b'PUTSCRIPT ' + literal("line\r\nbreak") + b' "keep;"', R.NO_BAD_NAME)
    c.transact('PUTSCRIPT "' + "n" * (scripts.MAX_NAME_LENGTH + 1) + '" "keep;"', R.NO_BAD_NAME)
    c.send("LISTSCRIPTS")
    assert c.until_ok() == []


def test_an_invalid_script_is_refused_with_its_line_and_nothing_is_stored(server, alice):
    c = login(server)
    c.transact(b'PUTSCRIPT "bad" ' + literal('require "fileinto";\r\nfileinto "A"\r\nkeep;\r\n'),
               "NO \"line 3: expected ';', found 'keep'\"")
    c.transact(b'PUTSCRIPT "bad" ' + literal("redirect;\r\n"), 'NO "line 1: *"')
    c.transact(b'PUTSCRIPT "bad" ' + literal(b"# \xff\r\nkeep;"), R.NO_NOT_UTF8)
    c.send("LISTSCRIPTS")
    assert c.until_ok() == []


def test_fileinto_a_missing_folder_is_stored_with_a_warning(server, alice):
    c = login(server)
    script = SCRIPT.replace("Bills", "Receipts")
    c.transact(b'PUTSCRIPT "office" ' + literal(script),
               'OK (WARNINGS) "line 3: fileinto \\"Receipts\\": no such folder, so this mail goes to INBOX*"')
    c.transact(b"CHECKSCRIPT " + literal(script), "OK (WARNINGS) *")
    c.send("LISTSCRIPTS")
    assert c.until_ok() == [b'"office"']  # stored all the same
    server.store.create_mailbox(alice.id, "Receipts")
    c.transact(b'PUTSCRIPT "office" ' + literal(script), R.OK_STORED)
    c.transact(b"CHECKSCRIPT " + literal(script), R.OK_VALID)


def test_checkscript(server, alice):
    c = login(server)
    c.transact(b"CHECKSCRIPT " + literal(SCRIPT), R.OK_VALID)
    c.transact('CHECKSCRIPT "require \\"nosuch\\";"', 'NO "line 1: unsupported extension \\"nosuch\\""')
    c.send("LISTSCRIPTS")
    assert c.until_ok() == []


def test_a_script_over_the_size_limit_is_refused_and_the_session_goes_on(server, alice):
    c = login(server)
    big = "# " + "x" * server.config.managesieve.max_script_size + "\r\nkeep;\r\n"
    assert server.config.managesieve.max_script_size == 1024 * 1024   # the default
    c.transact('HAVESPACE "big" %d' % len(big.encode()), R.NO_MAXSIZE)
    c.transact(b'PUTSCRIPT "big" ' + literal(big), R.NO_MAXSIZE)
    c.transact(b"CHECKSCRIPT " + literal(big), R.NO_MAXSIZE)
    c.transact("NOOP", R.OK_DONE)
    c.send("LISTSCRIPTS")
    assert c.until_ok() == []


def test_a_huge_literal_ends_the_session_without_reading_it(server, alice):
    c = login(server)
    c.send_raw(b'PUTSCRIPT "big" {4000000000+}\r\n')
    c.expect(R.BYE_LITERAL_TOO_BIG)
    assert c.closed()


def test_a_literal_before_login_is_small(server):
    c = SieveWire.open(server)
    c.send_raw(b'NOOP {100000+}\r\n')
    c.expect(R.BYE_LITERAL_TOO_BIG)
    assert c.closed()


def test_more_literals_than_any_command_takes_end_the_session(server, alice):
    c = login(server)
    c.send_raw(b"PUTSCRIPT " + b" ".join(literal("a") for _ in range(5)) + b"\r\n")
    c.expect(R.BYE_COMMAND_TOO_LONG)
    assert c.closed()


def test_the_configured_size_limit_is_the_one_applied(make_server, tmp_path):
    config = tmp_path / "kotakpos.toml"
    config.write_text("[managesieve]\nmax_script_size = 300\n")
    server = make_server(managesieve={"max_script_size": load(config).managesieve.max_script_size})
    server.add_user(ALICE)
    c = login(server)
    fits = "#" * (300 - len("\r\nkeep;")) + "\r\nkeep;"
    assert len(fits.encode()) == 300
    c.transact('HAVESPACE "a" 300', R.OK_SPACE)
    c.transact('HAVESPACE "a" 301', R.NO_MAXSIZE)
    c.transact(b'PUTSCRIPT "a" ' + literal("#" + fits), R.NO_MAXSIZE)
    c.transact(b"CHECKSCRIPT " + literal("#" + fits), R.NO_MAXSIZE)
    c.transact(b'PUTSCRIPT "a" ' + literal(fits), R.OK_STORED)
    # A literal far over the limit (past DROP_FACTOR times it) is not read: the session ends.
    c.send_raw(b'PUTSCRIPT "b" {%d+}\r\n' % (300 * managesieve_session.DROP_FACTOR + 1))
    c.expect(R.BYE_LITERAL_TOO_BIG)
    assert [s.name for s in server.store.list_sieve_scripts(server.store.get_user(ALICE).id)] == ["a"]


@pytest.mark.in_process(reason="it reloads the server with a config object")
def test_a_reloaded_size_limit_applies_to_the_next_command(make_server):
    server = make_server(managesieve={"max_script_size": 100})
    server.add_user(ALICE)
    c = login(server)
    c.transact('HAVESPACE "a" 500', R.NO_MAXSIZE)
    server.server.reread_config = lambda: with_overrides(server.config, managesieve={"max_script_size": 1000})
    server.server.reload()
    c.transact('HAVESPACE "a" 500', R.OK_SPACE)
    c.transact(b'PUTSCRIPT "a" ' + literal("#" * 490 + "\r\nkeep;"), R.OK_STORED)


def test_havespace_and_the_script_count(make_server):
    server = make_server(managesieve={"max_scripts": 2})
    server.add_user(ALICE)
    c = login(server)
    c.transact('HAVESPACE "a" 100', R.OK_SPACE)
    c.transact('PUTSCRIPT "a" "keep;"', R.OK_STORED)
    c.transact('PUTSCRIPT "b" "keep;"', R.OK_STORED)
    c.transact('HAVESPACE "c" 100', R.NO_MAXSCRIPTS)
    c.transact('HAVESPACE "b" 100', R.OK_SPACE)  # replacing is fine
    c.transact('PUTSCRIPT "c" "keep;"', R.NO_MAXSCRIPTS)


def test_missing_and_existing_names(server, alice):
    c = login(server)
    c.transact('GETSCRIPT "nosuch"', R.NO_NONEXISTENT)
    c.transact('SETACTIVE "nosuch"', R.NO_NONEXISTENT)
    c.transact('DELETESCRIPT "nosuch"', R.NO_NONEXISTENT)
    c.transact('RENAMESCRIPT "nosuch" "other"', R.NO_NONEXISTENT)
    c.transact('PUTSCRIPT "a" "keep;"', R.OK_STORED)
    c.transact('PUTSCRIPT "b" "keep;"', R.OK_STORED)
    c.transact('RENAMESCRIPT "a" "b"', R.NO_ALREADYEXISTS)


def test_noop_echoes_its_tag(server):
    c = SieveWire.open(server)
    c.transact('NOOP "STARTTLS-SYNC-42"', b'OK (TAG "STARTTLS-SYNC-42") "Done"')
    c.transact(b"NOOP " + literal("x"), b'OK (TAG "x") "Done"')


def test_users_see_only_their_own_scripts(server, alice):
    server.add_user(BOB)
    c = login(server)
    c.transact('PUTSCRIPT "mine" "keep;"', R.OK_STORED)
    b = SieveWire.logged_in(server, BOB, PASSWORD)
    b.send("LISTSCRIPTS")
    assert b.until_ok() == []
    b.transact('GETSCRIPT "mine"', R.NO_NONEXISTENT)


@pytest.mark.in_process(reason="it replaces a method of the server's store")
def test_a_store_failure_is_a_temporary_refusal(server, alice, monkeypatch):
    c = login(server)

    def broken(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(server.store, "list_sieve_scripts", broken)
    c.transact("LISTSCRIPTS", R.NO_TRYLATER)
    c.transact("NOOP", R.OK_DONE)


# -- password guessing -----------------------------------------------------------------------


@pytest.mark.in_process(reason="loopback is trusted: it makes the server's authenticator distrust it")
def test_thirty_wrong_passwords_are_slowed_then_blocked_with_imap(make_server, monkeypatch):
    server = make_server(auth={"block_after": 10, "fail_delay_max": 0.2, "block_seconds": 600})
    server.add_user(ALICE)
    # Loopback is never blocked wholesale (a webmail on this box); the guesser here stands
    # for an internet address.
    monkeypatch.setattr(server.ctx.auth, "is_trusted", lambda ip: False)
    wrong = plain_token(ALICE, "Tr0ub4dor&3")
    refusals = []
    c = SieveWire.tls(server)
    start = time.monotonic()
    for _ in range(30):
        c.send(f'AUTHENTICATE "PLAIN" "{wrong}"')
        refusals.append(c.line())
        if len(refusals) == 10:
            slowed = time.monotonic() - start
        if len(refusals) % managesieve_session.MAX_ERRORS == 0:  # each session ends after 10 errors
            c.expect(R.BYE_TOO_MANY_ERRORS)
            assert c.closed()
            c = SieveWire.tls(server)
    assert refusals[:10] == [R.NO_AUTH_FAILED] * 10 and set(refusals[10:]) == {R.NO_AUTH_BLOCKED}
    assert slowed >= 0.1 + 0.2 * 8  # 0.1 s after the first failure, doubling up to fail_delay_max
    start = time.monotonic()
    c.transact(f'AUTHENTICATE "PLAIN" "{plain_token(ALICE, PASSWORD)}"', R.NO_AUTH_BLOCKED)
    assert time.monotonic() - start < 1.0
    imap = Conversation.open(server, "imaps")  # the block is shared with IMAP
    imap.transact("NO", f'LOGIN {ALICE} "{PASSWORD}"')
    assert b"[UNAVAILABLE]" in imap.last
