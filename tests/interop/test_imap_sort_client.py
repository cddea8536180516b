"""imapclient's sort() and thread() against the server, as a script or webmail backend calls them."""

import imapclient

from tests.conftest import PASSWORD
from tests.protocol.imapconv import deliver


def test_imapclient_sort_and_thread(server):
    server.add_user("alice@example.org")
    for subject, sender, extra in (
        ("Budget", "Zoe <zoe@example.net>", "Message-ID: <b1@example.net>\r\n"),
        ("Re: Budget", "Amy <amy@example.net>", "Message-ID: <b2@example.net>\r\nIn-Reply-To: <b1@example.net>\r\n"),
        ("agenda", "Bob <bob@example.net>", "Message-ID: <a1@example.net>\r\n"),
    ):
        deliver(server, "alice@example.org",
                f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n{extra}\r\nHi\r\n".encode())
    client = imapclient.IMAPClient("127.0.0.1", port=server.port("imaps"), ssl=True,
                                   ssl_context=server.tls_context(), timeout=10)
    client.login("alice@example.org", PASSWORD)
    assert client.has_capability("SORT") and client.has_capability("THREAD=REFERENCES")
    client.select_folder("INBOX")
    assert client.sort(["SUBJECT"]) == [3, 1, 2]
    assert client.sort(["REVERSE", "FROM"]) == [1, 3, 2]
    assert client.sort("ARRIVAL", ["FROM", "example.net", "NOT", "SUBJECT", "agenda"]) == [1, 2]
    assert client.thread() == ((1, 2), (3,))
    assert client.thread("ORDEREDSUBJECT", ["SUBJECT", "budget"]) == ((1, 2),)
    client.logout()
