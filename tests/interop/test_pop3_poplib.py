"""Python's poplib as an independent client: POP3S, STLS and every command it offers."""

import poplib
import ssl

import pytest

from appliance.pop3 import replies as R
from tests.conftest import PASSWORD
from tests.protocol.pop3_wire import VerifiedPOP3, deliver, inbox, wait_for_pop3_sessions_to_end

ALICE = "alice@example.org"
MESSAGES = [
    b"From: bob@example.org\r\nSubject: hello\r\n\r\nHi Alice,\r\n.\r\n..see you\r\n",
    b"From: carol@example.org\r\nSubject: report\r\n\r\n" + b"line of the report\r\n" * 2000,
]


@pytest.fixture
def alice(server):
    user = server.add_user(ALICE)
    deliver(server, user, *MESSAGES)
    return user


def test_pop3_ssl_with_the_servers_certificate(server, alice):
    context = ssl.create_default_context(cafile=server.cafile)
    context.check_hostname = False  # we connect by address; the chain is still verified
    client = poplib.POP3_SSL("127.0.0.1", server.port("pop3s"), context=context, timeout=10)
    assert client.getwelcome().startswith(b"+OK")
    client.user(ALICE)
    client.pass_(PASSWORD)
    count, size = client.stat()
    assert count == 2 and size == sum(len(m) for m in MESSAGES)
    response, lines, octets = client.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == MESSAGES[0]
    assert octets == len(MESSAGES[0])  # what poplib counted (unstuffed) is what STAT said
    client.quit()


def test_pop3_ssl_rejects_an_untrusted_certificate(server):
    with pytest.raises(ssl.SSLCertVerificationError):
        poplib.POP3_SSL("127.0.0.1", server.port("pop3s"), context=ssl.create_default_context(), timeout=10)


def test_stls_with_certificate_name_check(server, alice):
    client = VerifiedPOP3(server, "pop3")
    assert "STLS" in client.capa()
    with pytest.raises(poplib.error_proto) as refused:
        client.user(ALICE)
    assert refused.value.args[0] == R.ERR_TLS_REQUIRED
    client.stls(server.tls_context())
    capabilities = client.capa()
    assert "STLS" not in capabilities and "USER" in capabilities
    assert capabilities["SASL"] == ["PLAIN"]
    client.user(ALICE)
    client.pass_(PASSWORD)
    assert client.stat()[0] == 2
    client.quit()


def test_every_command_poplib_has(server, alice):
    client = VerifiedPOP3(server, "pop3s")
    client.user(ALICE)
    client.pass_(PASSWORD)
    assert client.noop() == R.OK

    response, listing, _ = client.list()
    assert listing == [b"1 %d" % len(MESSAGES[0]), b"2 %d" % len(MESSAGES[1])]
    assert client.list(2) == R.scan_line(2, len(MESSAGES[1]))

    response, uids, _ = client.uidl()
    assert [line.split()[0] for line in uids] == [b"1", b"2"]
    assert client.uidl(1) == b"+OK " + uids[0]

    response, lines, _ = client.top(2, 1)
    assert lines == [b"From: carol@example.org", b"Subject: report", b"", b"line of the report"]

    response, lines, _ = client.retr(2)
    assert len(lines) == 2003

    assert client.dele(1) == R.OK_DELETED
    with pytest.raises(poplib.error_proto) as gone:
        client.retr(1)
    assert gone.value.args[0] == R.ERR_MESSAGE_DELETED
    assert client.stat() == (1, len(MESSAGES[1]))
    client.rset()
    assert client.stat()[0] == 2
    assert client.retr(1)[1][-1] == b"..see you"

    with pytest.raises(poplib.error_proto) as unknown:
        client.utf8()  # RFC 6856 UTF8 is not offered
    assert unknown.value.args[0] == R.ERR_UNKNOWN_COMMAND
    with pytest.raises(poplib.error_proto) as out_of_range:
        client.retr(3)
    assert out_of_range.value.args[0] == R.ERR_NO_SUCH_MESSAGE

    client.dele(2)
    assert client.quit() == R.OK_BYE
    assert [server.store.get_raw(row.blob_id) for row in inbox(server, alice)] == [MESSAGES[0]]
    assert "\\Seen" in inbox(server, alice)[0].flags  # RETR 1 above


def test_closing_without_quit_keeps_the_mail(server, alice):
    client = VerifiedPOP3(server, "pop3s")
    client.user(ALICE)
    client.pass_(PASSWORD)
    client.dele(1)
    client.dele(2)
    client.close()  # the connection drops; UPDATE is never entered
    wait_for_pop3_sessions_to_end(server)
    second = VerifiedPOP3(server, "pop3s")
    second.user(ALICE)
    second.pass_(PASSWORD)
    assert second.stat()[0] == 2
    second.quit()


def test_wrong_password_carries_the_auth_response_code(server, alice):
    client = VerifiedPOP3(server, "pop3s")
    client.user(ALICE)
    with pytest.raises(poplib.error_proto) as refused:
        client.pass_("not the password")
    assert refused.value.args[0].startswith(b"-ERR [AUTH]")


def test_apop_is_not_offered(server, alice):
    client = VerifiedPOP3(server, "pop3s")
    with pytest.raises(poplib.error_proto):
        client.apop(ALICE, PASSWORD)  # poplib finds no APOP timestamp in the greeting
