"""appliance.smtp.replies: the wire form of replies and the EHLO reply."""

from appliance.smtp import replies as R
from appliance.smtp.replies import format_reply


def test_single_line_with_enhanced_code():
    assert format_reply(R.R250_OK) == b"250 2.0.0 OK\r\n"
    assert format_reply(R.R554_RELAY_DENIED) == b"554 5.7.1 Relay access denied\r\n"


def test_intermediate_replies_have_no_enhanced_code():
    assert format_reply(R.R354_START_DATA) == b"354 End data with <CR><LF>.<CR><LF>\r\n"
    assert format_reply(R.R334_EMPTY) == b"334 \r\n"


def test_multiline_has_code_on_every_line_and_dash_until_last():
    out = format_reply(R.expn_list(["a@x.example", "b@x.example"]))
    assert out == b"250-2.1.5 <a@x.example>\r\n250 2.1.5 <b@x.example>\r\n"


def test_greeting_starts_with_hostname():
    assert format_reply(R.greeting("mx.example")) == b"220 mx.example ESMTP Kotakpos\r\n"


def test_every_named_reply_is_well_formed():
    named = [v for k, v in vars(R).items() if k.startswith("R") and isinstance(v, R.Reply)]
    assert len(named) > 50
    for r in named:
        wire = format_reply(r)
        assert wire.endswith(b"\r\n") and wire.count(b"\r\n") == len(r.lines)
        if r.status:
            # RFC 3463: the class digit matches the reply code's first digit
            assert r.status[0] == str(r.code)[0]


def _ehlo(**kw):
    situation = dict(size_limit=1000, is_tls=False, authenticated=False, plaintext_auth_allowed=False)
    situation.update(kw)
    return R.ehlo_reply("mx.example", "client.example", **situation)


def test_ehlo_plaintext_offers_starttls_not_auth():
    r = _ehlo()
    assert r.lines[0] == "mx.example greets client.example"
    assert "STARTTLS" in r.lines and not any(l.startswith("AUTH") for l in r.lines)
    for ext in ("PIPELINING", "SIZE 1000", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"):
        assert ext in r.lines


def test_ehlo_inside_tls_offers_auth_not_starttls():
    r = _ehlo(is_tls=True)
    assert "STARTTLS" not in r.lines and "AUTH PLAIN LOGIN" in r.lines


def test_ehlo_after_auth_offers_no_auth():
    assert not any(l.startswith("AUTH") for l in _ehlo(is_tls=True, authenticated=True).lines)


def test_ehlo_plaintext_auth_when_allowed():
    assert "AUTH PLAIN LOGIN" in _ehlo(plaintext_auth_allowed=True).lines


def test_ehlo_wire_form():
    wire = format_reply(_ehlo()).split(b"\r\n")[:-1]
    assert wire[0] == b"250-mx.example greets client.example"
    assert all(l.startswith(b"250-") for l in wire[:-1]) and wire[-1].startswith(b"250 ")
