"""The spamd client against a tiny stand-in speaking SPAMC/1.5 CHECK on loopback (SpamAssassin
itself is not installed for the tests), and its score in the spam filter."""

import socket
import threading

import pytest

from appliance.mda import spamd
from appliance.mda.spam import SpamFilter
from tests.mda_helpers import USER, Counting, incoming, plain, wire


@pytest.fixture
def fake_spamd():
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                seen.append(data)
                score = "12.5" if b"casino" in data else "0.4"
                verdict = "True" if score == "12.5" else "False"
                conn.sendall(f"SPAMD/1.1 0 EX_OK\r\nSpam: {verdict} ; {score} / 5.0\r\n\r\n".encode())

    threading.Thread(target=serve, daemon=True).start()
    yield f"127.0.0.1:{listener.getsockname()[1]}", seen
    listener.close()


def test_check_reads_the_score(fake_spamd):
    address, seen = fake_spamd
    assert spamd.check(address, b"Subject: casino\r\n\r\nwin\r\n", 5) == 12.5
    assert seen[0].startswith(b"CHECK SPAMC/1.5\r\nContent-length: 24\r\n\r\nSubject: casino")


def test_spamd_opinion_is_added_to_the_score(fake_spamd, tmp_path):
    from appliance.store import Store
    store = Store(tmp_path / "k.sqlite")
    try:
        ctx = Counting(store, spamd=fake_spamd[0])
        check = SpamFilter(ctx).check(incoming(wire(plain(body="Visit our casino"))))
        check.check_body()
        verdict = check.check_rcpt(USER)
        assert verdict.folders == ("Junk",) and "SPAMD" in dict(verdict.add_headers)["X-Spam-Status"]
    finally:
        store.close()


def test_unreachable_spamd_is_an_error_not_a_verdict():
    with pytest.raises(spamd.SpamdError):
        spamd.check("127.0.0.1:9", b"x", 1)
