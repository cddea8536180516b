"""Greylisting through SMTP (when configured): 451 4.7.1 first, accepted on a later retry."""

import smtplib
import time

import pytest

from tests.mda_helpers import folder, plain, send

ALICE = "alice@example.org"


def test_greylisted_then_accepted_on_retry(make_server):
    server = make_server(mda={"filters": ["greylist", "virus"], "greylist_delay": 0.5})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(server, plain(subject="try one"))
    assert e.value.smtp_code == 451 and e.value.smtp_error.startswith(b"4.7.1")
    assert folder(server, ALICE) == []
    time.sleep(0.6)
    send(server, plain(subject="try two"))
    [raw] = folder(server, ALICE)
    assert b"try two" in raw


def test_trusted_network_is_not_scored_or_greylisted(make_server):
    server = make_server(auth={"trusted_networks": ["127.0.0.0/8"]},
                         mda={"filters": ["greylist", "virus", "spam"]})
    server.store.add_domain("example.org")
    server.add_user(ALICE)
    send(server, plain(subject="from the scanner"))
    [raw] = folder(server, ALICE)
    assert b"from the scanner" in raw and b"X-Spam-Status" not in raw
