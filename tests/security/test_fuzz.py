"""Fuzzing whole sessions over real sockets: SMTP, POP3 and IMAP conversations made of
grammar fragments, random bytes and odd line ends, before and after login.

Each example sends its commands to a live server (pipelined for SMTP and IMAP, one at a
time for POP3, whose replies are framed by verb), half-closes, and reads to the end. It
must hold that

* no exception escapes a session (nothing is logged with a traceback);
* every reply is well-formed for its protocol — SMTP ``ddd[ -]x.y.z text`` with the
  enhanced code's class matching the reply code; POP3 ``+OK``/``-ERR``/``+ `` and
  dot-terminated lists; IMAP untagged, continuation, or tagged with a tag the client sent;
* the session ends when the client has gone (no hang), and the server still serves a
  well-behaved client afterwards.

An independent parser (imapclient's) reads the ENVELOPE and BODYSTRUCTURE our MIME code
renders for fuzzed messages: the round-trip from our bytes to IMAP data must hold.

The parsers alone are fuzzed in tests/unit (test_smtp_parse, test_pop3_parse,
test_imap_parse, test_mime, test_smtp_data). CI runs 200 examples per protocol;
``pytest -m slow tests/security/test_fuzz.py`` runs 3000.
"""

from __future__ import annotations

import base64
import re
import socket

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from imapclient.response_parser import parse_response

from appliance.mime import analyze
from tests.conftest import PASSWORD

CI_EXAMPLES = 200
LONG_EXAMPLES = 3000
USER = "fuzz@example.org"


@pytest.fixture
def fuzz_server(make_server):
    server = make_server(auth={"allow_plaintext": True},
                         smtp={"max_errors": 1000}, pop3={"max_errors": 1000}, imap={"max_errors": 1000},
                         mda={"filters": []})
    server.store.add_domain("example.org")
    server.add_user(USER)
    server.add_user("other@example.org")
    server.figures = {"examples": 0, "lines": 0}
    return server


def run_property(prop, examples: int) -> None:
    settings(max_examples=examples, deadline=None, database=None,
             suppress_health_check=list(HealthCheck))(prop)()


def converse(server, listener: str, data: bytes, timeout: float = 15.0) -> bytes:
    """Send everything, half-close, and read until the server closes."""
    sock = server.connect(listener, timeout=timeout)
    try:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close first (too many errors, a line too long): read what it said
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


def assert_no_tracebacks(server) -> None:
    failed = server.tracebacks()
    assert not failed, "a session failed: " + "; ".join(failed[:3])


# -- shared fragments -----------------------------------------------------------------------

LINE_ENDS = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"\r\r\n", b""])
NOISE = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))
TEXT = st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b""))
NUMBERS = st.sampled_from([b"0", b"1", b"2", b"-1", b"4294967296", b"99999999999999999999999", b"1:*", b"*", b"1,2"])


def lines_of(fragments) -> st.SearchStrategy:
    """A list of (line, line end) pairs joined into one byte string."""
    line = st.lists(fragments, min_size=1, max_size=4).map(lambda parts: b" ".join(parts))
    return st.lists(st.tuples(line, LINE_ENDS), min_size=1, max_size=12).map(
        lambda pairs: b"".join(l + end for l, end in pairs))


# -- SMTP -----------------------------------------------------------------------------------

SMTP_FRAGMENTS = st.sampled_from([
    b"EHLO client.test", b"HELO client.test", b"MAIL FROM:<a@client.test>", b"MAIL FROM:<>",
    b"RCPT TO:<fuzz@example.org>", b"RCPT TO:<x@remote.test>", b"RCPT TO:<@a,@b:fuzz@example.org>",
    b"RCPT TO:<fuzz%remote.test@example.org>", b'RCPT TO:<"fuzz@remote.test"@example.org>',
    b"RCPT TO:<fuzz@[127.0.0.1]>", b"RCPT TO:<Postmaster>", b"DATA", b"BDAT 5", b"BDAT 0 LAST", b"BDAT x",
    b"RSET", b"NOOP", b"HELP", b"HELP MAIL", b"VRFY fuzz", b"EXPN list", b"AUTH PLAIN", b"AUTH LOGIN",
    b"AUTH PLAIN " + base64.b64encode(b"\0fuzz@example.org\0wrong"), b"AUTH CRAM-MD5", b"*",
    b"SIZE=1000", b"SIZE=99999999999999999999", b"BODY=8BITMIME", b"BODY=BINARYMIME", b"SMTPUTF8",
    b"RET=HDRS", b"ENVID=x", b"NOTIFY=SUCCESS,FAILURE", b"ORCPT=rfc822;a@b", b".", b"..", b"Subject: x",
    b"GET / HTTP/1.1", b"\x00", b"\xff\xfe",
]) | NOISE | TEXT


def plaintext_part(output: bytes, go_ahead: re.Pattern) -> bytes:
    """The output up to and including the server's go-ahead for TLS: after it come TLS
    records (the handshake our plaintext fails), not protocol lines."""
    m = go_ahead.search(output)
    return output[:m.end()] if m else output


def check_smtp_replies(output: bytes) -> int:
    """Every line is part of a well-formed reply; returns how many replies there were."""
    assert output.startswith(b"220 "), output[:100]
    replies = 0
    lines = output.split(b"\r\n")
    assert lines[-1] == b"", f"a reply does not end with CRLF: {lines[-1][:80]!r}"
    for line in lines[:-1]:
        m = re.fullmatch(rb"([2-5]\d\d)([ -])(.*)", line, re.S)
        assert m, f"malformed SMTP reply line {line[:80]!r}"
        code, sep, text = m.groups()
        if sep == b" ":
            replies += 1
        if code not in (b"220", b"250", b"334", b"354"):  # greeting, EHLO lines, intermediate replies
            enhanced = re.match(rb"(\d)\.\d{1,3}\.\d{1,3} ", text)
            assert enhanced and enhanced.group(1) == code[:1], f"reply without a matching enhanced code: {line!r}"
        assert b"\r" not in text and b"\n" not in text
    return replies


def smtp_property(server):
    @given(lines_of(SMTP_FRAGMENTS))
    def prop(data):
        output = converse(server, "smtp", data)
        server.figures["examples"] += 1
        server.figures["lines"] += data.count(b"\n") + 1
        check_smtp_replies(plaintext_part(output, re.compile(rb"\r\n220 2\.0\.0 [^\r\n]*\r\n")))
        assert_no_tracebacks(server)
    return prop


def test_smtp_sessions_fuzzed(fuzz_server):
    run_property(smtp_property(fuzz_server), CI_EXAMPLES)
    finish(fuzz_server, "SMTP", "smtp", b"EHLO ok.test\r\nQUIT\r\n", b"221 ")


# -- POP3 -----------------------------------------------------------------------------------

def is_pop3_multiline(verb: bytes, line: bytes) -> bool:
    """Whether a +OK to this command starts a dot-terminated list (RFC 1939, RFC 2449; a
    bare AUTH lists the mechanisms, as Outlook expects)."""
    arguments = len(line.split()) - 1
    return (verb in (b"CAPA", b"RETR", b"TOP") or (verb in (b"LIST", b"UIDL") and arguments == 0)
            or (verb == b"AUTH" and arguments == 0))
POP3_FRAGMENTS = st.sampled_from([
    b"USER " + USER.encode(), b"PASS wrong", b"USER", b"PASS", b"STAT", b"LIST", b"LIST 1", b"UIDL", b"UIDL 2",
    b"RETR 1", b"TOP 1 0", b"TOP 1 99999999999", b"DELE 1", b"RSET", b"NOOP", b"CAPA", b"STLS", b"AUTH",
    b"AUTH PLAIN", b"AUTH PLAIN =", b"AUTH LOGIN", b"*", b"=", b"APOP x y",
]) | NOISE | TEXT | NUMBERS


def pop3_property(server):
    @given(st.booleans(), st.lists(st.tuples(st.lists(POP3_FRAGMENTS, min_size=1, max_size=3), LINE_ENDS),
                                   min_size=1, max_size=10))
    def prop(log_in, commands):
        sock = server.connect("pop3", timeout=10)
        reader = sock.makefile("rb")
        try:
            assert reader.readline().startswith(b"+OK ")
            if log_in:
                sock.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
                assert reader.readline().startswith(b"+OK") and reader.readline().startswith(b"+OK")
            for parts, end in commands:
                line = b" ".join(parts)
                server.figures["lines"] += 1
                sock.sendall(line + (end if end.endswith(b"\n") else end + b"\r\n"))
                first = reader.readline()
                if not first:
                    break  # the server closed (too many errors, or a QUIT among the fragments)
                assert first.endswith(b"\r\n") and first.startswith((b"+OK", b"-ERR", b"+ ")), first[:80]
                verb = line.split(b" ")[0].upper()
                if verb == b"STLS" and first.startswith(b"+OK"):
                    break  # a TLS handshake is due now; what follows is not POP3
                if first.startswith(b"+OK") and is_pop3_multiline(verb, line):
                    while (body := reader.readline()) not in (b".\r\n", b""):
                        assert body.endswith(b"\r\n") and not body.startswith(b".\r\n")
            server.figures["examples"] += 1
        finally:
            reader.close()
            sock.close()
        assert_no_tracebacks(server)
    return prop


def test_pop3_sessions_fuzzed(fuzz_server):
    from tests.protocol.imapconv import deliver, message
    deliver(fuzz_server, USER, message("one"))
    deliver(fuzz_server, USER, message("two", body=".leading dot\r\n..\r\n"))
    run_property(pop3_property(fuzz_server), CI_EXAMPLES)
    finish(fuzz_server, "POP3", "pop3", b"CAPA\r\nQUIT\r\n", b"+OK")


# -- IMAP -----------------------------------------------------------------------------------

IMAP_FRAGMENTS = st.sampled_from([
    b"CAPABILITY", b"NOOP", b"LOGOUT", b"ID NIL", b'ID ("name" "fuzz")', b"STARTTLS", b"ENABLE QRESYNC",
    b"LOGIN fuzz wrong", b"AUTHENTICATE PLAIN", b"SELECT INBOX", b"EXAMINE Sent", b"SELECT \"other/../INBOX\"",
    b"CREATE a/b/c", b"DELETE a", b"RENAME INBOX x", b"LIST \"\" *", b"LIST \"\" %/%/%", b"LSUB \"\" *",
    b"STATUS INBOX (MESSAGES UIDNEXT)", b"APPEND INBOX {5+}\r\nhello", b"APPEND INBOX (\\Seen) {3}\r\nabc",
    b"APPEND INBOX {99999999999}", b"FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)", b"FETCH * BODY[1.2.3.MIME]",
    b"UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM)])", b"FETCH 1 BINARY[1]", b"STORE 1 +FLAGS (\\Deleted)",
    b"UID STORE 1:* FLAGS.SILENT ()", b"SEARCH TEXT x", b"SEARCH OR (FROM a) (NOT (SEEN))", b"UID SEARCH 1:*",
    b"COPY 1 Trash", b"MOVE 1:* Archive", b"EXPUNGE", b"UID EXPUNGE 1", b"CLOSE", b"UNSELECT", b"IDLE", b"DONE",
    b"GETQUOTAROOT INBOX", b"NAMESPACE", b"(((((((((((", b")", b"{0}", b"~{3}", b"\"unterminated", b"\\",
    b"CHECK", b"SEARCH CHARSET UTF-8 TEXT {3+}\r\n\xc3\xa9x",
]) | NOISE | TEXT | NUMBERS

_IMAP_TAGGED = re.compile(rb"(t\d+) (OK|NO|BAD)( \[[^\]\r\n]*\])?( .*)?", re.S)


def imap_lines(output: bytes) -> list[bytes]:
    """Response lines with server literals ({n} CRLF then n octets) inlined."""
    lines, pos = [], 0
    while pos < len(output):
        end = output.find(b"\r\n", pos)
        assert end >= 0, f"response without CRLF: {output[pos:pos + 80]!r}"
        line = output[pos:end]
        pos = end + 2
        while (m := re.search(rb"\{(\d+)\}$", line)):
            size = int(m.group(1))
            line += b"\r\n" + output[pos:pos + size]
            pos += size
            end = output.find(b"\r\n", pos)
            assert end >= 0
            line += output[pos:end]
            pos = end + 2
        lines.append(line)
    return lines


def imap_property(server):
    @given(st.booleans(), st.lists(st.tuples(st.lists(IMAP_FRAGMENTS, min_size=1, max_size=4), LINE_ENDS),
                                   min_size=1, max_size=10))
    def prop(log_in, commands):
        data = f"t0 LOGIN {USER} \"{PASSWORD}\"\r\nt00 SELECT INBOX\r\n".encode() if log_in else b""
        tags = {b"t0", b"t00"}
        starttls = []
        for n, (parts, end) in enumerate(commands, start=1):
            tag = b"t%d" % n
            tags.add(tag)
            if parts == [b"STARTTLS"]:
                starttls.append(tag)
            data += tag + b" " + b" ".join(parts) + (end if end.endswith(b"\n") else end + b"\r\n")
        server.figures["examples"] += 1
        server.figures["lines"] += len(commands)
        output = converse(server, "imap", data)
        if starttls:
            go_ahead = b"|".join(starttls)
            output = plaintext_part(output, re.compile(rb"(?:^|\r\n)(?:" + go_ahead + rb") OK[^\r\n]*\r\n"))
        lines = imap_lines(output)
        assert lines and lines[0].startswith(b"* OK ")
        for line in lines:
            if line.startswith((b"* ", b"+ ")) or line == b"+":
                continue
            m = _IMAP_TAGGED.fullmatch(line)
            assert m, f"malformed IMAP response {line[:100]!r}"
            assert m.group(1) in tags, f"a tag the client never sent: {line[:60]!r}"
        assert_no_tracebacks(server)
    return prop


def test_imap_sessions_fuzzed(fuzz_server):
    from tests.protocol.imapconv import deliver, message
    deliver(fuzz_server, USER, message("one"))
    deliver(fuzz_server, USER, b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\npart\r\n--b--\r\n")
    run_property(imap_property(fuzz_server), CI_EXAMPLES)
    finish(fuzz_server, "IMAP", "imap", b"a CAPABILITY\r\nb LOGOUT\r\n", b"b OK")


# -- MIME through an independent IMAP parser ------------------------------------------------

MIME_FRAGMENTS = st.sampled_from([
    b"From: \"A, B\" <a@b.example>\r\n", b"To: undisclosed-recipients:;\r\n", b"Cc: (comment) x@y, <@route:z@w>\r\n",
    b"Subject: =?utf-8?q?caf=C3=A9?= \"quoted\" \\ back\r\n", b"Subject: (((\r\n", b"Date: not a date\r\n",
    b"Message-ID: <\"x\"@y>\r\n", b"In-Reply-To: {5}\r\n", b"MIME-Version: 1.0\r\n",
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n", b"Content-Type: multipart/alternative; boundary=c\r\n",
    b"Content-Type: message/rfc822\r\n", b"Content-Type: text/plain; charset=\"utf-8\"; format=flowed\r\n",
    b"Content-Type: image/png; name=\"a \\\"b\\\".png\"\r\n", b"Content-Type: text/plain; name*=utf-8''%E2%82%AC\r\n",
    b"Content-Disposition: attachment; filename=\"x.txt\"\r\n", b"Content-Language: en, fr\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-ID: <id@x>\r\n", b"Content-Description: {3}\r\n",
    b"\r\n", b"--b\r\n", b"--b--\r\n", b"--c\r\n", b"--c--\r\n", b"body line\r\n", b"\xff\xfe\r\n", b"\"\\(\r\n",
])


def _parsed(form: bytes):
    """imapclient's parser takes literals the way imaplib hands them over: (line up to
    and including {n}, the n octets) pairs, then the rest."""
    pieces, rest = [], form
    while (m := re.search(rb"\{(\d+)\}\r\n", rest)):
        size = int(m.group(1))
        pieces.append((rest[:m.start()] + b"{%d}" % size, rest[m.end():m.end() + size]))
        rest = rest[m.end() + size:]
    return parse_response(pieces + [rest])


def mime_property(figures):
    @given(st.lists(MIME_FRAGMENTS | NOISE, max_size=40))
    def prop(pieces):
        raw = b"".join(pieces)
        info = analyze(raw)
        figures["examples"] += 1
        envelope = _parsed(info.envelope)
        assert len(envelope) == 1 and len(envelope[0]) == 10, info.envelope  # RFC 3501 §7.4.2: ten fields
        for form in (info.body, info.bodystructure):
            parsed = _parsed(form)
            assert len(parsed) == 1 and isinstance(parsed[0], tuple), form
    return prop


def test_rendered_envelope_and_bodystructure_parse_with_an_independent_parser():
    figures = {"examples": 0}
    run_property(mime_property(figures), CI_EXAMPLES * 2)
    print(f"\nfuzz MIME: {figures['examples']} messages; every ENVELOPE/BODY/BODYSTRUCTURE parsed by imapclient")


# -- the long runs ----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("protocol", ["smtp", "pop3", "imap"])
def test_long_fuzz(fuzz_server, protocol):
    from tests.protocol.imapconv import deliver, message
    deliver(fuzz_server, USER, message("one"))
    prop = {"smtp": smtp_property, "pop3": pop3_property, "imap": imap_property}[protocol](fuzz_server)
    run_property(prop, LONG_EXAMPLES)
    finish(fuzz_server, protocol.upper(), protocol, b"NOOP\r\n" if protocol != "imap" else b"a NOOP\r\n", b"")


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_long_mime_fuzz():
    figures = {"examples": 0}
    run_property(mime_property(figures), LONG_EXAMPLES * 3)


def finish(server, name: str, listener: str, probe: bytes, want: bytes) -> None:
    """The server still serves a well-behaved client; print the figures."""
    output = converse(server, listener, probe)
    assert want in output, output[:200]
    assert_no_tracebacks(server)
    print(f"\nfuzz {name}: {server.figures['examples']} sessions, {server.figures['lines']} command lines; "
          "no traceback, every reply well-formed, server still serving")
