"""The reload path SIGHUP takes, in-process: new sessions get the new settings, open ones keep theirs."""

import logging

import pytest

from appliance.config import with_overrides
from appliance.smtp import replies as R
from tests.protocol.smtp_wire import Wire


pytestmark = pytest.mark.in_process(reason="it hands the server a new config object without a file")

ALICE = "alice@example.org"


def test_a_reload_reaches_new_sessions_and_leaves_open_ones_alone(make_server, caplog):
    caplog.set_level(logging.INFO, logger="kotakpos")
    server = make_server(smtp={"max_recipients": 1}, server={"hostname": "mail.example.org",
                                                             "listen": ["127.0.0.1"], "log_level": "info"})
    server.add_user(ALICE)
    server.add_user("bob@example.org")
    before = Wire.open(server)
    before.ehlo()
    server.server.reread_config = lambda: with_overrides(server.config, smtp={"max_recipients": 2},
                                                         server={"hostname": "mx.elsewhere.example"})
    server.server.reload()
    assert "applied smtp.max_recipients" in caplog.text
    assert "restart, not applied: server.hostname" in caplog.text

    after = Wire.open(server)
    assert after.transact("250 *", "EHLO client.test").startswith(b"250-mail.example.org ")  # hostname: at restart
    for c in (before, after):
        c.transact(R.R250_SENDER_OK, "MAIL FROM:<someone@remote.test>")
        c.transact(R.R250_RCPT_OK, f"RCPT TO:<{ALICE}>")
    before.transact(R.R452_TOO_MANY_RCPTS, "RCPT TO:<bob@example.org>")
    after.transact(R.R250_RCPT_OK, "RCPT TO:<bob@example.org>")
