"""POP3 and IMAP on one mailbox at once, each through its stdlib client."""

import imaplib
import poplib
import socket

import pytest

from appliance.pop3 import replies as R
from tests.conftest import PASSWORD
from tests.protocol.pop3_wire import HOSTNAME, VerifiedPOP3, deliver

ALICE = "alice@example.org"


class VerifiedIMAP(imaplib.IMAP4_SSL):
    """IMAP4_SSL to our loopback port, checking the certificate's name (see VerifiedPOP3)."""

    def __init__(self, server):
        self._address = server.address("imaps")
        super().__init__(HOSTNAME, self._address[1], ssl_context=server.tls_context(), timeout=10)

    def _create_socket(self, timeout):
        sock = socket.create_connection(self._address, timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


@pytest.fixture
def alice(server):
    user = server.add_user(ALICE)
    deliver(server, user, *(b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i) for i in range(1, 4)))
    return user


def pop3_login(server):
    client = VerifiedPOP3(server, "pop3s")
    client.user(ALICE)
    client.pass_(PASSWORD)
    return client


def imap_login(server):
    imap = VerifiedIMAP(server)
    imap.login(ALICE, PASSWORD)
    imap.select("INBOX")
    return imap


def test_imap_expunge_during_a_pop3_session(server, alice):
    pop = pop3_login(server)
    imap = imap_login(server)
    imap.store("2", "+FLAGS", "(\\Deleted)")
    imap.expunge()
    imap.logout()

    with pytest.raises(poplib.error_proto) as gone:
        pop.retr(2)
    assert gone.value.args[0] == R.ERR_MESSAGE_GONE
    assert pop.retr(3)[1][-1] == b"body 3"  # numbers from the login snapshot still hold
    pop.dele(1)
    pop.quit()

    imap = imap_login(server)
    typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    subjects = [part[1].strip() for part in data if isinstance(part, tuple)]
    assert subjects == [b"Subject: m3"]
    imap.logout()


def test_retr_is_seen_in_imap_and_dele_is_gone_from_imap(server, alice):
    pop = pop3_login(server)
    pop.retr(1)
    pop.dele(3)
    pop.quit()
    imap = imap_login(server)
    typ, flags = imap.fetch("1:*", "(FLAGS)")
    assert typ == "OK" and len(flags) == 2
    assert b"\\Seen" in flags[0] and b"\\Seen" not in flags[1]
    imap.logout()


def subjects_by_uidl(server) -> dict[bytes, bytes]:
    """unique-id -> Subject line, for every message, in one POP3 session."""
    pop = pop3_login(server)
    try:
        return {uid: pop.top(int(number), 0)[1][0]
                for number, uid in (line.split() for line in pop.uidl()[1])}
    finally:
        pop.quit()


def test_uidl_names_the_same_message_after_imap_moves_one_away(server, alice):
    before = subjects_by_uidl(server)
    imap = imap_login(server)
    imap.copy("1", "Archive")
    imap.store("1", "+FLAGS", "(\\Deleted)")
    imap.expunge()
    imap.logout()
    after = subjects_by_uidl(server)
    assert sorted(after.values()) == [b"Subject: m2", b"Subject: m3"]
    assert all(before[uid] == subject for uid, subject in after.items())
