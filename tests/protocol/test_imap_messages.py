"""Message commands: APPEND, FETCH (all items and sections), STORE, COPY, MOVE,
EXPUNGE, UID EXPUNGE, SEARCH/ESEARCH, CONDSTORE and QRESYNC.

The behaviour of imaptest's scripted groups fetch, fetch-body*, fetch-bodystructure,
fetch-envelope, fetch-binary-mime*, store, copy, move, expunge*, search-* and esearch*
is tried here, in our own conversations."""

import base64
import re

import pytest

from tests.protocol.imapconv import deliver, message, server_zone, session

MULTIPART = (
    b"From: Carol <carol@example.net>\r\nTo: alice@example.org\r\nCc: Dan <dan@example.net>\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= report\r\nDate: Tue, 5 Mar 2024 09:00:00 +0100\r\n"
    b"X-Mailer: mutt\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attached quarterly numbers.\r\n"
    b"--XX\r\nContent-Type: application/octet-stream; name=data.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(b"\x00\x01binary\xffdata") +
    b"--XX--\r\n"
)


def fetch(conv, command: str) -> list[bytes]:
    return [line for line in conv.transact("OK", command) if b" FETCH " in line]


def selected(server, *raws, address="alice@example.org"):
    conv = session(server, address)
    for raw in raws:
        deliver(server, address, raw)
    conv.transact("OK", "SELECT INBOX")
    return conv


def test_append_then_fetch_everything(server):
    conv = session(server)
    conv.transact("NO", "APPEND Nowhere {1+}\r\nx")
    assert b"TRYCREATE" in conv.last
    raw = message("appended")
    tag = conv.next_tag()
    conv.send(f'{tag} APPEND Drafts (\\Draft $Todo) "05-Mar-2024 08:09:10 +0100" {{{len(raw)}+}}'.encode() + b"\r\n" + raw + b"\r\n")
    _, tagged = conv.read_until(tag)
    assert re.match(rb"t\d+ OK \[APPENDUID \d+ 1\]", tagged)
    conv.transact("OK", "SELECT Drafts")
    with server_zone("UTC0"):
        (line,) = fetch(conv, "FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE UID)")
    assert line == (b'* 1 FETCH (FLAGS ($Todo \\Draft \\Recent) INTERNALDATE "05-Mar-2024 07:09:10 +0000" '
                    b"RFC822.SIZE %d UID 1)" % len(raw))
    (line,) = fetch(conv, "FETCH 1 RFC822")
    assert line.endswith(raw + b" FLAGS ($Todo \\Draft \\Recent \\Seen))")


def test_envelope_bodystructure_and_sections(server):
    conv = selected(server, MULTIPART)
    (line,) = fetch(conv, "FETCH 1 (ENVELOPE)")
    assert b'"=?utf-8?q?Gr=C3=BC=C3=9Fe?= report" (("Carol" NIL "carol" "example.net"))' in line
    (line,) = fetch(conv, "FETCH 1 BODYSTRUCTURE")
    assert b'("text" "plain" ("charset" "utf-8")' in line and b'"mixed" ("boundary" "XX")' in line
    (line,) = fetch(conv, "FETCH 1 BODY")
    assert b'"mixed")' in line and b"boundary" not in line
    (line,) = fetch(conv, "FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT X-MAILER)]")
    fields = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= report\r\nX-Mailer: mutt\r\n\r\n"
    assert line.endswith(b"BODY[HEADER.FIELDS (SUBJECT X-MAILER)] {%d}\r\n%s)" % (len(fields), fields))
    (line,) = fetch(conv, "FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT X-MAILER CONTENT-TYPE DATE CC MIME-VERSION)]")
    rest = b"From: Carol <carol@example.net>\r\nTo: alice@example.org\r\n\r\n"
    assert line.endswith(b"{%d}\r\n%s)" % (len(rest), rest))
    (line,) = fetch(conv, "FETCH 1 BODY.PEEK[1]")
    # the CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1)
    assert line.endswith(b"BODY[1] {35}\r\nSee the attached quarterly numbers.)")
    (line,) = fetch(conv, "FETCH 1 BODY.PEEK[1]<4.3>")
    assert line.endswith(b"BODY[1]<4> {3}\r\nthe)")
    (line,) = fetch(conv, "FETCH 1 BODY.PEEK[2.MIME]")
    assert b"Content-Transfer-Encoding: base64" in line
    (line,) = fetch(conv, "FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2])")
    assert b"BINARY.SIZE[2] 13" in line and line.endswith(b"BINARY[2] ~{13}\r\n\x00\x01binary\xffdata)")
    (line,) = fetch(conv, "FETCH 1 BODY.PEEK[TEXT]<0.6>")
    assert line.endswith(b"BODY[TEXT]<0> {6}\r\n--XX\r\n)")
    (line,) = fetch(conv, "FETCH 1 BODY.PEEK[9]")
    assert line.endswith(b'BODY[9] {0}\r\n)')
    (line,) = fetch(conv, "FETCH 1 FLAGS")
    assert b"\\Seen" not in line  # PEEK leaves \Seen alone
    (line,) = fetch(conv, "FETCH 1 BODY[1]")
    assert b"FLAGS (\\Recent \\Seen)" in line


FORWARD = (
    b"From: Dan <dan@example.net>\r\nTo: alice@example.org\r\nSubject: Fwd: report\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=OUT\r\n\r\n"
    b"--OUT\r\nContent-Type: text/plain\r\n\r\nForwarding this.\r\n"
    b"--OUT\r\nContent-Type: message/rfc822\r\n\r\n" + MULTIPART + b"\r\n--OUT--\r\n"
)


def test_nested_parts_of_a_forwarded_message(server):
    conv = selected(server, FORWARD)
    (line,) = fetch(conv, "FETCH 1 BODY.PEEK[2.HEADER.FIELDS (FROM)]")
    assert line.endswith(b"{35}\r\nFrom: Carol <carol@example.net>\r\n\r\n)")
    (line,) = fetch(conv, "FETCH 1 BODY.PEEK[2.1]")
    assert line.endswith(b"BODY[2.1] {35}\r\nSee the attached quarterly numbers.)")
    (line,) = fetch(conv, "FETCH 1 BINARY.PEEK[2.2]")
    assert line.endswith(b"~{13}\r\n\x00\x01binary\xffdata)")
    (line,) = fetch(conv, "FETCH 1 BODY.PEEK[2.2.MIME]")
    assert b"Content-Transfer-Encoding: base64" in line
    (line,) = fetch(conv, "FETCH 1 BODY.PEEK[2.TEXT]<0.4>")
    assert line.endswith(b"BODY[2.TEXT]<0> {4}\r\n--XX)")
    (line,) = fetch(conv, "FETCH 1 BODYSTRUCTURE")
    assert b'"message" "rfc822"' in line


def test_binary_of_header_mime_and_text_sections(server):
    # RFC 3516 names only part numbers for BINARY[]; a HEADER, MIME or TEXT section has no
    # Content-Transfer-Encoding of its own, so BINARY of it answers BODY's octets, never BAD
    conv = selected(server, FORWARD)
    for section in ("2.HEADER", "2.HEADER.FIELDS (FROM)", "2.2.MIME", "2.TEXT", "TEXT"):
        (body,) = fetch(conv, f"FETCH 1 BODY.PEEK[{section}]")
        (binary,) = fetch(conv, f"FETCH 1 (BINARY.SIZE[{section}] BINARY.PEEK[{section}])")
        octets = body.partition(b"}\r\n")[2][:-1]
        assert binary.startswith(b"* 1 FETCH (BINARY.SIZE[%s] %d BINARY[%s] {%d}\r\n"
                                 % (section.encode(), len(octets), section.encode(), len(octets)))
        assert binary.endswith(octets + b")")
    (line,) = fetch(conv, "FETCH 1 FLAGS")
    assert b"\\Seen" not in line  # .PEEK kept it unread
    conv.transact("BAD", "FETCH 1 BINARY.PEEK[2.BOGUS]")


DIGEST = (
    b"From: list@example.net\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: digest@example.net\r\nSubject: weekly\r\nContent-Type: multipart/digest; boundary=\"d d\"\r\n\r\n"
    b"prologue\r\n--d d \r\n\r\nFrom: one@example.net\r\nSubject: first\r\n\r\nfirst body\r\n"
    b"--d d\r\nX-Note: about two\r\n\r\nFrom: two@example.net\r\nSubject: second\r\n\r\nsecond body\r\n"
    b"--d d--\r\nepilogue\r\n"
)


def test_digest_parts_inside_a_forwarded_message(server):
    # RFC 2046 §5.1.5: a digest's parts are message/rfc822 unless they say otherwise; a part
    # with an empty MIME header has an empty MIME section (RFC 3501 §6.4.5). The boundary line
    # may carry trailing blanks (RFC 2046 §5.1.1).
    conv = selected(server, DIGEST)
    expected = {
        # the CRLF before a boundary line belongs to the boundary
        "1.1": b"From: one@example.net\r\nSubject: first\r\n\r\nfirst body",
        "1.1.MIME": b"\r\n",
        "1.1.HEADER": b"From: one@example.net\r\nSubject: first\r\n\r\n",
        "1.1.TEXT": b"first body",
        "1.2.MIME": b"X-Note: about two\r\n\r\n",
        "1.2.TEXT": b"second body",
    }
    for section, octets in expected.items():
        (line,) = fetch(conv, f"FETCH 1 BODY.PEEK[{section}]")
        assert line.endswith(b"{%d}\r\n%s)" % (len(octets), octets)), section
    (line,) = fetch(conv, "FETCH 1 BODYSTRUCTURE")
    assert line.count(b'("message" "rfc822"') == 3 and b'"digest"' in line


def test_envelope_groups_routes_and_empty_fields(server):
    # RFC 3501 §7.4.2: a group is a start marker (NIL NIL "name" NIL) and an end marker of NILs;
    # a source route is the address's adl; an empty Sender or Reply-To falls back to From
    conv = selected(server,
                    b"From: bob@example.net (Bob Real)\r\nSender: \r\nReply-To: \r\n"
                    b"To: team: ann@a.example, bo@b.example;, solo: cy@c.example;\r\n\r\nbody\r\n",
                    b"From: <@relay.example:dee@d.example>\r\n\r\nbody\r\n")
    lines = fetch(conv, "FETCH 1:2 ENVELOPE")
    bob = b'(("Bob Real" NIL "bob" "example.net"))'
    assert b"NIL NIL %s %s %s (" % (bob, bob, bob) in lines[0]
    assert (b'((NIL NIL "team" NIL)(NIL NIL "ann" "a.example")(NIL NIL "bo" "b.example")(NIL NIL NIL NIL)'
            b'(NIL NIL "solo" NIL)(NIL NIL "cy" "c.example")(NIL NIL NIL NIL))') in lines[0]
    assert b'((NIL "@relay.example" "dee" "d.example"))' in lines[1]


def test_search_addresses_by_part_name_comment_and_group(server):
    # RFC 3501 §6.4.4: FROM/TO/CC/BCC match a substring of the address header, names included;
    # comments inside an address do not hide it, group names and members count
    conv = selected(server,
                    b"From: Real Person <user-from@d.example>\r\nTo: user-to@d.example\r\n\r\nx\r\n",
                    b"From: <user-from (a note) @ (another) d.example>\r\nBcc: Hidden <user-bcc@d.example>\r\n\r\nx\r\n",
                    b"From: user-from1@d.example, user-from2@d.example\r\n"
                    b"To: crew: m1@d.example, m2@d.example;\r\n\r\nx\r\n")
    assert search_numbers(conv, "SEARCH FROM user-from@d.example") == [1, 2]
    assert search_numbers(conv, "SEARCH FROM ser-fro") == [1, 2, 3]
    assert search_numbers(conv, 'SEARCH FROM "eal pers"') == [1]
    assert search_numbers(conv, "SEARCH BCC hidden") == [2]
    assert search_numbers(conv, "SEARCH TO crew") == [3]
    assert search_numbers(conv, "SEARCH TO m2@d.example") == [3]
    assert search_numbers(conv, 'SEARCH HEADER TO ""') == [1, 3]
    assert search_numbers(conv, "SEARCH TO m3") == []


def test_rfc822_header_text_and_macros(server):
    raw = message("macro")
    conv = selected(server, raw)
    head, _, text = raw.partition(b"\r\n\r\n")
    (line,) = fetch(conv, "FETCH 1 (RFC822.HEADER RFC822.TEXT)")
    assert head + b"\r\n\r\n" in line and text in line
    (line,) = fetch(conv, "FETCH 1 ALL")
    assert all(k in line for k in (b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE"))
    (line,) = fetch(conv, "FETCH 1 FULL")
    assert b" BODY (" in line
    conv.transact("BAD", "FETCH 2 FLAGS")  # beyond the mailbox
    assert fetch(conv, "UID FETCH 99 FLAGS") == []


def test_store_flags_and_keywords(server):
    conv = selected(server, message("a"), message("b"), message("c"))
    assert fetch(conv, "STORE 1:2 +FLAGS (\\Flagged $Work)") == [
        b"* 1 FETCH (FLAGS ($Work \\Flagged \\Recent) UID 1)", b"* 2 FETCH (FLAGS ($Work \\Flagged \\Recent) UID 2)"]
    assert fetch(conv, "STORE 2 -FLAGS.SILENT ($Work)") == []
    # a keyword new to the mailbox is announced before it is used
    untagged = conv.transact("OK", "STORE 3 +FLAGS.SILENT ($Later)")
    assert untagged[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Later $Work)"
    assert conv.transact("OK", "STORE 3 -FLAGS.SILENT ($Later)") == []
    assert fetch(conv, "UID STORE 3 FLAGS \\Seen \\Answered") == [b"* 3 FETCH (FLAGS (\\Answered \\Recent \\Seen) UID 3)"]
    lines = fetch(conv, "FETCH 1:* FLAGS")
    assert lines[1] == b"* 2 FETCH (FLAGS (\\Flagged \\Recent))"
    conv.transact("BAD", "STORE 1 +FLAGS (\\Recent)")
    conv.transact("OK", "EXAMINE INBOX")
    conv.transact("NO", "STORE 1 +FLAGS (\\Seen)")
    # keywords in use show in FLAGS and PERMANENTFLAGS allows new ones
    untagged = conv.transact("OK", "SELECT INBOX")
    assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)" in untagged
    assert any(b"[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)]" in l for l in untagged)


def test_copy_move_and_expunge(server):
    conv = selected(server, message("1"), message("2"), message("3"), message("4"))
    conv.transact("OK", "COPY 1:2 Archive")
    assert re.search(rb"\[COPYUID \d+ 1,2 1,2\]", conv.last)
    conv.transact("NO", "COPY 1 Nowhere")
    assert b"TRYCREATE" in conv.last
    lines = conv.transact("OK", "MOVE 2 Trash")
    assert re.match(rb"\* OK \[COPYUID \d+ 2 1\]", lines[0]) and lines[1] == b"* 2 EXPUNGE"
    lines = conv.transact("OK", "UID MOVE 4 Trash")
    assert lines[1] == b"* 3 EXPUNGE"
    conv.transact("OK", "STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert conv.transact("OK", "UID EXPUNGE 3") == [b"* 2 EXPUNGE"]  # only UID 3 of the two
    assert conv.transact("OK", "EXPUNGE") == [b"* 1 EXPUNGE"]
    assert conv.transact("OK", "STATUS Trash (MESSAGES)") == [b'* STATUS "Trash" (MESSAGES 2)']
    deliver(server, "alice@example.org", message("5"))
    conv.transact("OK", "SELECT Archive")
    conv.transact("OK", "STORE 1 +FLAGS (\\Deleted)")
    assert conv.transact("OK", "CLOSE") == []  # CLOSE expunges silently
    assert conv.transact("OK", "STATUS Archive (MESSAGES)") == [b'* STATUS "Archive" (MESSAGES 1)']
    conv.transact("OK", "EXAMINE Archive")
    conv.transact("NO", "EXPUNGE")
    conv.transact("OK", "UNSELECT")
    conv.transact("NO", "FETCH 1 FLAGS")


def test_uids_ascend_and_are_never_reused(server):
    conv = selected(server, message("1"), message("2"))
    conv.transact("OK", "STORE 2 +FLAGS (\\Deleted)")
    conv.transact("OK", "EXPUNGE")
    deliver(server, "alice@example.org", message("3"))
    untagged = conv.transact("OK", "NOOP")
    assert b"* 2 EXISTS" in untagged
    assert fetch(conv, "FETCH 1:* UID") == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 3)"]
    assert fetch(conv, "UID FETCH 2:* UID") == [b"* 2 FETCH (UID 3)"]
    assert fetch(conv, "UID FETCH 100:* UID") == [b"* 2 FETCH (UID 3)"]  # n:* includes the largest


def search_numbers(conv, command: str) -> list[int]:
    (line,) = [l for l in conv.transact("OK", command) if l.startswith(b"* SEARCH")]
    return [int(n) for n in line.split()[2:]]


@pytest.mark.in_process(reason="it sets the time zone of the server's process, which is the test's own")
def test_internaldate_days_are_the_servers_local_days(server):
    # RFC 3501 §6.4.4: BEFORE, ON and SINCE look at INTERNALDATE's date, disregarding time and
    # zone; the server reads that date, and shows INTERNALDATE, in its own zone, summer time too
    conv = session(server)
    conv.transact("OK", "CREATE Dated")
    stamps = ("24-Mar-2007 23:30:00 +0200", "25-Mar-2007 00:30:00 +0200",
              "25-Mar-2007 23:30:00 +0300", "26-Mar-2007 00:30:00 +0300")
    for when in stamps:
        raw = message(when)
        tag = conv.next_tag()
        conv.send(f'{tag} APPEND Dated "{when}" {{{len(raw)}+}}'.encode() + b"\r\n" + raw + b"\r\n")
        assert conv.read_until(tag)[1].split()[1] == b"OK"
    conv.transact("OK", "SELECT Dated")
    with server_zone("EET-2EEST,M3.5.0/3,M10.5.0/4"):  # +0200, +0300 from 25 March 2007
        assert search_numbers(conv, "SEARCH BEFORE 25-Mar-2007") == [1]
        assert search_numbers(conv, "SEARCH ON 25-Mar-2007") == [2, 3]
        assert search_numbers(conv, "SEARCH SINCE 26-Mar-2007") == [4]
        lines = fetch(conv, "FETCH 1:4 INTERNALDATE")
        assert [line.split(b'"')[1].decode() for line in lines] == list(stamps)
    with server_zone("UTC0"):
        assert search_numbers(conv, "SEARCH ON 24-Mar-2007") == [1, 2]
        assert search_numbers(conv, "SEARCH ON 25-Mar-2007") == [3, 4]
        (line,) = fetch(conv, "FETCH 2 INTERNALDATE")
        assert b'"24-Mar-2007 22:30:00 +0000"' in line


def test_search_keys(server):
    conv = selected(server, message("lunch on friday", body="Pizza or sushi?\r\n", sender="bob@example.net"),
                    MULTIPART, message("invoice", body="Amount due: 42 EUR\r\n", sender="billing@shop.example"))
    conv.transact("OK", "STORE 1 +FLAGS (\\Seen $Work)")
    search = lambda q: conv.transact("OK", "SEARCH " + q)[0]  # noqa: E731
    assert search("ALL") == b"* SEARCH 1 2 3"
    assert search("SEEN") == b"* SEARCH 1" and search("UNSEEN") == b"* SEARCH 2 3"
    assert search("KEYWORD $Work") == b"* SEARCH 1" and search("UNKEYWORD $Work") == b"* SEARCH 2 3"
    assert search("FROM carol") == b"* SEARCH 2"
    assert search("FROM BILLING@SHOP") == b"* SEARCH 3"
    assert search("CC dan") == b"* SEARCH 2"
    conv.transact("BAD", "SEARCH SUBJECT grüße")  # 8-bit must come as a literal
    assert conv.transact("OK", b"SEARCH CHARSET UTF-8 SUBJECT {7+}\r\ngr\xc3\xbc\xc3\x9fe")[0] == b"* SEARCH 2"
    assert search("HEADER X-Mailer mutt") == b"* SEARCH 2"
    assert search('HEADER X-Mailer ""') == b"* SEARCH 2"
    assert search("BODY sushi") == b"* SEARCH 1"
    assert search("TEXT QUARTERLY") == b"* SEARCH 2"
    assert search("TEXT billing") == b"* SEARCH 3"  # TEXT covers the header too
    assert search("BODY billing") == b"* SEARCH"
    assert search("OR FROM carol TEXT sushi") == b"* SEARCH 1 2"
    assert search("NOT (OR FROM carol TEXT sushi)") == b"* SEARCH 3"
    assert search("LARGER 400") == b"* SEARCH 2" and search("SMALLER 400") == b"* SEARCH 1 3"
    assert search("SENTON 5-Mar-2024") == b"* SEARCH 2"
    assert search("SENTBEFORE 5-Mar-2024") == b"* SEARCH 1 3"
    assert search("SINCE 1-Jan-2000 BEFORE 1-Jan-2100") == b"* SEARCH 1 2 3"
    assert search("2:* UID 1:2") == b"* SEARCH 2"
    assert search("RECENT NEW") == b"* SEARCH 2 3"
    assert conv.transact("OK", "UID SEARCH FROM bob@example.net")[0] == b"* SEARCH 1"
    lines = conv.transact("OK", "SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    assert re.match(rb'\* ESEARCH \(TAG "t\d+"\) MIN 2 MAX 3 ALL 2:3 COUNT 2', lines[0])
    lines = conv.transact("OK", "UID SEARCH RETURN (COUNT) DELETED")
    assert re.match(rb'\* ESEARCH \(TAG "t\d+"\) UID COUNT 0', lines[0])
    conv.transact("NO", "SEARCH CHARSET KOI8-R ALL")
    assert b"BADCHARSET" in conv.last


def test_condstore(server):
    conv = session(server)
    deliver(server, "alice@example.org", message("a"))
    deliver(server, "alice@example.org", message("b"))
    untagged = conv.transact("OK", "SELECT INBOX (CONDSTORE)")
    start = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(untagged)).group(1))
    (line,) = fetch(conv, "STORE 1 +FLAGS (\\Flagged)")
    modseq = int(re.search(rb"MODSEQ \((\d+)\)", line).group(1))
    assert modseq > start
    assert fetch(conv, f"FETCH 1:* (FLAGS) (CHANGEDSINCE {start})") == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (%d))" % modseq]
    conv.transact("OK", f"STORE 1:2 (UNCHANGEDSINCE {start}) +FLAGS (\\Seen)")
    assert b"[MODIFIED 1]" in conv.last
    assert conv.transact("OK", f"SEARCH MODSEQ {modseq}")[0].startswith(b"* SEARCH 1 2 (MODSEQ ")
    (line,) = conv.transact("OK", "STATUS INBOX (HIGHESTMODSEQ)")
    assert int(re.search(rb"HIGHESTMODSEQ (\d+)", line).group(1)) > modseq


def test_qresync(server):
    conv = session(server)
    for n in range(5):
        deliver(server, "alice@example.org", message(str(n)))
    conv.transact("OK", "ENABLE QRESYNC")
    untagged = conv.transact("OK", "SELECT INBOX")
    text = b"\n".join(untagged)
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", text).group(1))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", text).group(1))
    conv.transact("OK", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert conv.transact("OK", "EXPUNGE") == [b"* VANISHED 2"]
    conv.transact("OK", "STORE 3 +FLAGS (\\Flagged)")
    other = session(server)
    other.transact("OK", "SELECT INBOX")
    other.transact("OK", "UID STORE 5 +FLAGS (\\Deleted)")
    assert other.transact("OK", "UID EXPUNGE 5") == [b"* 4 EXPUNGE"]
    # a client coming back with what it knew gets only the differences
    untagged = conv.transact("OK", f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:5))")
    assert untagged[0].startswith(b"* OK [CLOSED]")
    assert b"* VANISHED (EARLIER) 2,5" in untagged
    changed = [l for l in untagged if b"FETCH" in l]
    assert len(changed) == 1 and b"UID 4 FLAGS (\\Flagged)" in changed[0]
    lines = conv.transact("OK", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")
    assert lines[0] == b"* VANISHED (EARLIER) 2,5"
    conv.transact("BAD", "SELECT INBOX (QRESYNC (1 2 3:x))")
