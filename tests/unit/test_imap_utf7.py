"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3)."""

import pytest
from hypothesis import given, strategies as st

from appliance.imap import utf7


@pytest.mark.parametrize("name, wire", [
    ("INBOX", b"INBOX"),
    ("Entwürfe", b"Entw&APw-rfe"),
    ("Peter & Paul", b"Peter &- Paul"),
    ("日本語", b"&ZeVnLIqe-"),
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
])
def test_known_spellings(name, wire):
    assert utf7.encode(name) == wire
    assert utf7.decode(wire) == name


@given(st.text(max_size=40))
def test_round_trip(name):
    assert utf7.decode(utf7.encode(name)) == name


@pytest.mark.parametrize("wire", [
    b"&Jjo",           # unterminated
    b"&U,BTFw-&ZeVnLIqe-",  # two adjacent runs: not the canonical spelling
    b"&AGE-",          # "a" encoded although it is printable
    b"caf\xc3\xa9",    # raw 8-bit
    b"&U/BTFw-",       # "/" instead of ","
])
def test_invalid_spellings_are_refused(wire):
    with pytest.raises(utf7.Utf7Error):
        utf7.decode(wire)
