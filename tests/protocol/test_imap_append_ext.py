"""MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469) against a live server.

imaptest groups: append, catenate, catenate-multiappend."""

import re

from tests.conftest import HOSTNAME
from tests.protocol.imapconv import message, server_zone, session

MULTIPART = (
    b"From: Carol <carol@example.net>\r\nTo: alice@example.org\r\nSubject: parts\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain\r\n\r\nFirst part text.\r\n"
    b"--XX\r\nContent-Type: text/plain\r\n\r\nSecond part: the figures.\r\n"
    b"--XX--\r\n"
)


def send_append(conv, arguments: bytes) -> tuple[list[bytes], bytes]:
    """One APPEND whose literals are all LITERAL+ (sent at once)."""
    tag = conv.next_tag()
    conv.send(tag.encode() + b" APPEND " + arguments + b"\r\n")
    return conv.read_until(tag)


def lit(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def count(conv, mailbox: str = "INBOX") -> int:
    (line,) = [x for x in conv.transact("OK", f"STATUS {mailbox} (MESSAGES)") if x.startswith(b"* STATUS")]
    return int(re.search(rb"MESSAGES (\d+)", line).group(1))


def test_multiappend_adds_all_with_one_appenduid(server):
    conv = session(server)
    assert b"MULTIAPPEND" in b" ".join(conv.transact("OK", "CAPABILITY"))
    one, two, three = message("one"), message("two"), message("three")
    _, tagged = send_append(conv, b"INBOX (\\Seen) " + lit(one) + b' "05-Mar-2024 08:09:10 +0100" ' + lit(two)
                            + b" (\\Flagged) " + lit(three))
    match = re.match(rb"t\d+ OK \[APPENDUID (\d+) 1:3\]", tagged)
    assert match, tagged
    conv.transact("OK", "SELECT INBOX")
    with server_zone("UTC0"):
        lines = conv.transact("OK", "FETCH 1:3 (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"\\Seen" in lines[0] and b"Subject: one" in lines[0]
    assert b'"05-Mar-2024 07:09:10 +0000"' in lines[1] and b"Subject: two" in lines[1]
    assert b"\\Flagged" in lines[2] and b"Subject: three" in lines[2]


def test_multiappend_over_quota_adds_nothing(server):
    server.add_user("quota@example.org", quota=20_000)
    conv = session(server, "quota@example.org")
    small = message("small", body="x" * 3000)
    big = message("big", body="y" * 15000)
    _, tagged = send_append(conv, b"INBOX " + lit(small) + b" " + lit(small) + b" " + lit(big))
    assert b" NO [OVERQUOTA]" in tagged
    assert count(conv) == 0
    _, tagged = send_append(conv, b"INBOX " + lit(small) + b" " + lit(small))
    assert b"OK [APPENDUID" in tagged and count(conv) == 2


def test_multiappend_with_a_bad_date_adds_nothing(server):
    conv = session(server)
    raw = message("dated")
    _, tagged = send_append(conv, b"INBOX " + lit(raw) + b" " + lit(raw) + b' "31-Feb-2024 08:09:10 +0100" ' + lit(raw))
    assert b" BAD " in tagged
    _, tagged = send_append(conv, b"INBOX " + lit(raw) + b" " + lit(raw) + b" " + lit(b""))
    assert b" NO " in tagged
    assert count(conv) == 0


def test_catenate_part_of_another_message_and_text(server):
    conv = session(server)
    assert b"CATENATE" in b" ".join(conv.transact("OK", "CAPABILITY"))
    conv.transact("OK", "CREATE Projects")
    _, tagged = send_append(conv, b"Projects " + lit(MULTIPART))
    uidvalidity = int(re.search(rb"APPENDUID (\d+) ", tagged).group(1))
    header = b"From: alice@example.org\r\nSubject: forwarded figures\r\n\r\nHere they are:\r\n"
    url = f"imap://alice%40example.org@{HOSTNAME}/Projects;UIDVALIDITY={uidvalidity}/;UID=1/;SECTION=2".encode()
    _, tagged = send_append(conv, b"INBOX CATENATE (TEXT " + lit(header) + b" URL \"" + url + b"\" TEXT "
                            + lit(b"\r\n-- \r\nAlice\r\n") + b")")
    assert re.match(rb"t\d+ OK \[APPENDUID \d+ 1\]", tagged), tagged
    conv.transact("OK", "SELECT INBOX")
    (line,) = conv.transact("OK", "FETCH 1 BODY.PEEK[]")
    expected = header + b"Second part: the figures.\r\n-- \r\nAlice\r\n"
    assert line.endswith(b"{%d}\r\n%s)" % (len(expected), expected))
    # a relative URL is read against the selected mailbox, here INBOX; PARTIAL cuts octets out
    _, tagged = send_append(conv, b"INBOX CATENATE (URL \";UID=1/;SECTION=HEADER\" URL \";UID=1/;PARTIAL=0.4\")")
    assert b"OK [APPENDUID" in tagged
    (line,) = [x for x in conv.transact("OK", "FETCH 2 BODY.PEEK[TEXT]") if b"FETCH" in x]
    assert line.endswith(b"{4}\r\nFrom)")
    # the server may be named by the address the client reached; another server is not this one
    _, tagged = send_append(conv, b'INBOX CATENATE (URL "imap://127.0.0.1/INBOX/;UID=1/;SECTION=TEXT")')
    assert b"OK [APPENDUID" in tagged
    _, tagged = send_append(conv, b'INBOX CATENATE (URL "imap://imap.example.net/INBOX/;UID=1")')
    assert b"NO [BADURL" in tagged


def test_catenate_bad_urls_and_too_big(make_server):
    server = make_server(limits={"message_size": 2000})
    server.store.add_domain("example.org")
    conv = session(server)
    raw = message("source", body="z" * 1200)
    send_append(conv, b"INBOX " + lit(raw))
    for url in (b"/INBOX/;UID=99", b"/Nowhere/;UID=1", b"/INBOX;UIDVALIDITY=1/;UID=1",
                f"imap://bob%40example.org@{HOSTNAME}/INBOX/;UID=1".encode(), b"/INBOX/;UID=1/;URLAUTH=anonymous",
                b";UID=1"):  # relative, but nothing is selected
        _, tagged = send_append(conv, b"INBOX CATENATE (URL \"" + url + b"\")")
        assert b" NO [BADURL " + url + b"]" in tagged, tagged
    _, tagged = send_append(conv, b"INBOX CATENATE (URL \"/INBOX/;UID=1\" URL \"/INBOX/;UID=1\")")
    assert b" NO [TOOBIG]" in tagged
    # the messages of one APPEND share the limit: URLs cannot multiply a short command
    _, tagged = send_append(conv, b"INBOX CATENATE (URL \"/INBOX/;UID=1\") CATENATE (URL \"/INBOX/;UID=1\")")
    assert b" NO [TOOBIG]" in tagged
    assert count(conv) == 1


def test_multiappend_with_synchronising_literals(make_server):
    server = make_server(limits={"message_size": 4000})
    server.store.add_domain("example.org")
    conv = session(server)
    first, second = message("sync one"), message("sync two")
    tag = conv.next_tag()
    conv.send(b"%s APPEND INBOX {%d}" % (tag.encode(), len(first)))
    assert conv.line().startswith(b"+ ")
    conv.send(first + b" (\\Seen) {%d}\r\n" % len(second))
    assert conv.line().startswith(b"+ ")
    conv.send(second + b"\r\n")
    _, tagged = conv.read_until(tag)
    assert b"OK [APPENDUID" in tagged and b" 1:2]" in tagged
    # a later literal past the limit is refused before it is sent, and the earlier one is not kept
    tag = conv.next_tag()
    conv.send(b"%s APPEND INBOX {%d}" % (tag.encode(), len(first)))
    assert conv.line().startswith(b"+ ")
    conv.send(first + b" {5000}\r\n")
    _, tagged = conv.read_until(tag)
    assert b" NO [TOOBIG]" in tagged
    assert count(conv) == 2


def test_multiappend_is_bounded(server):
    conv = session(server)
    _, tagged = send_append(conv, b"INBOX " + b" ".join([lit(message("many"))] * 1001))
    assert b" NO [LIMIT]" in tagged and count(conv) == 0


def test_multiappend_mixes_catenated_and_plain_messages(server):
    # RFC 3502 §6.3.11 with RFC 4469 §5: each message of one APPEND is either a literal or a
    # CATENATE list, with its own flags; a bad URL in any of them adds none
    conv = session(server)
    conv.transact("OK", "CREATE Source")
    _, tagged = send_append(conv, b"Source " + lit(MULTIPART))
    assert b"OK [APPENDUID" in tagged
    header_url = b'"/Source/;UID=1/;SECTION=HEADER"'
    _, tagged = send_append(conv, b"INBOX CATENATE (URL " + header_url + b") (\\Answered) "
                            + lit(b"New: Message\r\n\r\nbody\r\n")
                            + b" CATENATE (URL \"/Source/;UID=1\")")
    assert re.match(rb"t\d+ OK \[APPENDUID \d+ 1:3\]", tagged), tagged
    conv.transact("OK", "SELECT INBOX")
    lines = [x for x in conv.transact("OK", "FETCH 1:3 (FLAGS BODY.PEEK[])") if b" FETCH " in x]
    header = MULTIPART.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert lines[0].endswith(b"{%d}\r\n%s)" % (len(header), header))  # the header alone: a message with no body
    assert b"\\Answered" in lines[1] and lines[1].endswith(b"New: Message\r\n\r\nbody\r\n)")
    assert lines[2].endswith(MULTIPART + b")")
    _, tagged = send_append(conv, b"INBOX " + lit(b"Subject: x\r\n\r\ny\r\n")
                            + b' CATENATE (URL "/Source;UIDVALIDITY=1/;UID=1")')
    assert b" NO [BADURL" in tagged and count(conv) == 3
    # RFC 4469 §5: a missing target mailbox is TRYCREATE, whatever the parts are
    _, tagged = send_append(conv, b'Nowhere CATENATE (TEXT ' + lit(b"Subject: x\r\n\r\n")
                            + b' URL "/Source;UIDVALIDITY=1/;UID=1")')
    assert b" NO [TRYCREATE]" in tagged
