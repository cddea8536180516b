"""Spam filtering through SMTP, and Bayes training by IMAP MOVE into and out of Junk."""

import imaplib

import pytest

from tests.conftest import PASSWORD
from tests.mda_helpers import folder, plain, send, wait_for

ALICE = "alice@example.org"
SPAM = "Replica watches cheap pharmacy pills discount casino jackpot"
SIMILAR = "Discount replica watches, cheap casino pills and pharmacy jackpot"
HAM = "Quarterly budget review meeting agenda attached for Tuesday afternoon"


@pytest.fixture
def alice(server):
    server.add_user(ALICE)
    return server


def imap(server) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    client.starttls(ssl_context=server.tls_context())
    client.login(ALICE, PASSWORD)
    return client


def status(raw: bytes) -> str:
    for line in raw.split(b"\r\n"):
        if line.startswith(b"X-Spam-Status:"):
            return line.decode()
    raise AssertionError("no X-Spam-Status header")


def test_every_copy_gets_spam_headers(alice):
    send(alice, plain(body=HAM))
    [raw] = folder(alice, ALICE)
    assert status(raw).startswith("X-Spam-Status: No, score=") and b"\r\nX-Spam-Score: " in raw


def test_moving_into_junk_trains_spam_and_out_of_junk_trains_ham(alice):
    send(alice, plain(subject="offer", body=SPAM))
    send(alice, plain(subject="agenda", body=HAM))
    client = imap(alice)
    try:
        client.select("INBOX")
        typ, _ = client.uid("MOVE", "1", "Junk")
        assert typ == "OK"
        wait_for(lambda: alice.stats().get("mda.learned_spam") == 1, what="spam training")

        send(alice, plain(subject="offer again", body=SIMILAR))
        [filed] = folder(alice, ALICE, "Junk")[1:]
        assert status(filed).startswith("X-Spam-Status: Yes") and "BAYES_99" in status(filed)
        assert b"offer again" not in b"".join(folder(alice, ALICE))
        send(alice, plain(subject="agenda again", body=HAM))
        assert any(b"agenda again" in m for m in folder(alice, ALICE))  # unlike mail stays in INBOX

        # a false positive moved back out of Junk is learned as ham
        client.select("Junk")
        typ, _ = client.uid("MOVE", "2", "INBOX")
        assert typ == "OK"
        wait_for(lambda: alice.stats().get("mda.learned_ham") == 1, what="ham training")
    finally:
        client.logout()
