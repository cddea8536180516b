"""sievelib's ManageSieve client (what Modoboa and other Python tools use) against a live
server: STARTTLS with certificate checks, AUTHENTICATE PLAIN, every script verb."""

from __future__ import annotations

import pytest
from sievelib.managesieve import Client

from tests.conftest import HOSTNAME, PASSWORD

ALICE = "alice@example.org"
SCRIPT = 'require "fileinto";\r\nif header :contains "subject" "invoice" {\r\n  fileinto "INBOX";\r\n}\r\n'


@pytest.fixture
def client(server, monkeypatch):
    server.add_user(ALICE)
    monkeypatch.setenv("SSL_CERT_FILE", server.cafile)  # sievelib verifies with the default trust store
    c = Client("127.0.0.1", server.port("managesieve"), srvhostname=HOSTNAME)
    assert c.connect(ALICE, PASSWORD, starttls=True, authmech="PLAIN")
    yield c
    c.logout()


def test_capabilities_seen_by_sievelib(client):
    assert client.get_implementation() == "Kotakpos"
    assert {"fileinto", "vacation", "imap4flags"} <= set(client.get_sieve_capabilities())


def test_every_script_verb(client):
    assert client.havespace("office", len(SCRIPT))
    assert client.checkscript(SCRIPT)
    assert client.putscript("office", SCRIPT)
    assert client.putscript("spare", "keep;")
    assert client.setactive("office")
    assert client.listscripts() == ("office", ["spare"])
    assert client.getscript("office").splitlines() == SCRIPT.splitlines()  # sievelib joins lines with LF
    assert client.renamescript("office", "work")
    assert client.listscripts() == ("work", ["spare"])
    assert not client.deletescript("work") and client.errcode == b"ACTIVE"
    assert client.setactive("")
    assert client.deletescript("work")
    assert client.listscripts() == (None, ["spare"])
    assert not client.getscript("work") and client.errcode == b"NONEXISTENT"


def test_an_invalid_script_is_refused_with_its_line(client):
    assert not client.putscript("bad", 'require "fileinto";\r\nfileinto "A"\r\nkeep;\r\n')
    assert b"line 3" in client.errmsg
    assert client.listscripts() == (None, [])
