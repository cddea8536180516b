"""The arc= entry of Authentication-Results (RFC 8617 §10.1) for the cases that need no chain
to be signed: none, temperror without DNS, and how a checked chain is written."""

from appliance.mda import arc
from appliance.mda.dnsquery import Resolver
from tests.mda_helpers import plain, wire


def test_no_arc_set_is_none_without_asking_dns():
    assert arc.verify(wire(plain()), Resolver("none", 0.5)) == arc.ArcResult("none")


def test_a_chain_without_dns_is_temperror():
    raw = b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=list.test; s=arc; b=AAAA\r\n" + wire(plain())
    result = arc.verify(raw, Resolver("none", 0.5))
    assert result.result == "temperror" and result.entry("192.0.2.1", trusted=False) == "arc=temperror"


def test_the_entry_names_each_set_and_the_trusted_sealer():
    checked = arc.ArcResult("pass", "fwd.test", 2, ("as.2.fwd.test=pass", "ams.2.fwd.test=pass",
                                                    "as.1.list.test=pass", "ams.1.list.test=fail"))
    assert checked.entry("2001:db8::1", trusted=True) == (
        "arc=pass (trusted sealer fwd.test; as.2.fwd.test=pass, ams.2.fwd.test=pass, as.1.list.test=pass, "
        "ams.1.list.test=fail) header.oldest-pass=2 smtp.remote-ip=2001:db8::1")
