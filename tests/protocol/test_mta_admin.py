"""Queue administration through the admin API and the CLI (`kotakpos queue ...`, `kotakpos dns`)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.mta import dkim
from tests.protocol.mta_helpers import delivery_status, inbox, queue, wait_until
from tests.protocol.mta_sink import Sink

ALICE = "alice@example.org"


@pytest.fixture
def stuck(make_server):
    """A server whose remote destination keeps answering 451, so entries stay queued."""
    sink = Sink(data_replies=["451 4.3.0 busy"] * 100)
    server = make_server(mta={"routes": {"remote.test": sink.route}, "retry_intervals": ["1h"]})
    server.add_user(ALICE)
    yield server, sink
    sink.close()


def kotakpos(server, *args) -> str:
    result = CliRunner().invoke(main, ["--data", str(server.data_dir), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def attempted(server, queue_id):
    return wait_until(lambda: (e := server.store.queue_entry(queue_id)).attempts >= 1 and e, what="an attempt")


def test_queue_list_and_show_name_the_entry_and_its_last_error(stuck):
    server, _ = stuck
    [queue_id] = queue(server, ALICE, ["bob@remote.test"])
    attempted(server, queue_id)
    listing = kotakpos(server, "queue", "list")
    assert f"<{ALICE}> -> <bob@remote.test>" in listing and "451 4.3.0 busy" in listing
    shown = kotakpos(server, "queue", "show", str(queue_id))
    assert "recipient:    bob@remote.test" in shown and "attempts:     1" in shown


def test_hold_release_retry_from_the_cli(stuck):
    server, sink = stuck
    [queue_id] = queue(server, ALICE, ["bob@remote.test"])
    attempted(server, queue_id)
    assert "held 1 of 1 entry" in kotakpos(server, "queue", "hold", str(queue_id))
    assert server.store.queue_entry(queue_id).state == "held"
    kotakpos(server, "queue", "retry", "--all")
    assert server.store.queue_entry(queue_id).attempts == 1, "a held entry is not tried"
    kotakpos(server, "queue", "release", str(queue_id))
    kotakpos(server, "queue", "retry", str(queue_id))
    wait_until(lambda: server.store.queue_entry(queue_id).attempts == 2, what="a second attempt")
    assert sink.data_attempts == 2


def test_bounce_from_the_cli_returns_the_message_to_its_sender(stuck):
    server, _ = stuck
    [queue_id] = queue(server, ALICE, ["bob@remote.test"])
    attempted(server, queue_id)
    assert "bounced 1 of 1 entry" in kotakpos(server, "queue", "bounce", str(queue_id))
    assert server.store.list_queue() == []
    [dsn] = inbox(server, ALICE)
    [block] = delivery_status(dsn)
    assert block["Action"] == "failed" and block["Status"] == "5.0.0"


def test_delete_removes_without_a_notice(stuck):
    server, _ = stuck
    [queue_id] = queue(server, ALICE, ["bob@remote.test"])
    attempted(server, queue_id)
    kotakpos(server, "queue", "delete", str(queue_id))
    assert server.store.list_queue() == [] and inbox(server, ALICE) == []


def test_domain_add_makes_keys_and_dns_prints_the_records_to_publish(make_server):
    server = make_server()
    kotakpos(server, "domain", "add", "example.com")
    out = kotakpos(server, "dns", "example.com")
    rsa_name, rsa_value = dkim.public_records(server.store, "example.com")[0]
    assert "example.com.\tIN\tMX\t10 " in out
    assert '"v=spf1 mx ~all"' in out
    assert f"{rsa_name}.\tIN\tTXT" in out
    assert rsa_value[:200] in out.replace('" "', "")
    assert "kotakpos-ed25519._domainkey.example.com.\tIN\tTXT\t\"v=DKIM1; k=ed25519; p=" in out
    assert "_dmarc.example.com.\tIN\tTXT\t\"v=DMARC1; p=quarantine" in out
    assert "; optional:" in out and "_mta-sts.example.com." in out


def test_admin_api_bounce_skips_unknown_ids(stuck):
    server, _ = stuck
    assert server.admin.queue_bounce([4242]) == 0
