"""SORT and THREAD keys (appliance.mime.sortkeys): RFC 5256 §2.1 base subjects, RFC 5051
collation keys, and what is read from a header."""

import pytest

from appliance.mime.sortkeys import base_subject, casemap, message_ids, sort_keys


@pytest.mark.parametrize("subject, base, reply", [
    # step 1: whitespace runs, tabs and line breaks become one space
    ("plain   subject\twith  runs", "plain subject with runs", False),
    # step 2: trailing "(fwd)" and whitespace, repeatedly
    ("report (fwd)", "report", True),
    ("report (FWD) (fwd)  ", "report", True),
    ("report  ", "report", False),
    # step 3: leaders: re, fw, fwd, with blobs and spaces, repeatedly
    ("Re: report", "report", True),
    ("RE:re: Fwd: FW: report", "report", True),
    ("Re[2]: report", "report", True),
    ("Re [list]: report", "report", True),
    ("[list] Re: report", "report", True),
    ("  Re:   report", "report", True),
    # step 4: a leading blob goes when something is left after it
    ("[list] report", "report", False),
    ("[list][other] report", "report", False),
    ("[list]", "[list]", False),
    ("[list] ", "[list]", False),  # the trailing space goes first (step 2): nothing would be left
    # step 5: leaders and blobs in any interleaving
    ("[list] [x] Re: [y] Fwd: report", "report", True),
    # step 6: "[fwd: ...]" is unwrapped and the steps run again
    ("[Fwd: Re: report]", "report", True),
    ("[fwd: [fwd: report (fwd)]]", "report", True),
    # not leaders: no colon, or words that merely start like one
    ("Re report", "Re report", False),
    ("Reply: report", "Reply: report", False),
    ("Fwdx: report", "Fwdx: report", False),
    ("", "", False),
])
def test_base_subject(subject, base, reply):
    assert base_subject(subject) == (base, reply)


def test_casemap_folds_case_and_diacritics_apart_from_the_base_letter():
    assert casemap("Hello") == casemap("HELLO") == casemap("hello")
    assert casemap("Émile") == casemap("ÉMILE") == casemap("émile")
    # RFC 5051: characters with diacritics collate right after their base characters
    keys = sorted(["f", "é", "e", "d"], key=casemap)
    assert keys == ["d", "e", "é", "f"]
    assert casemap("ǆ") == casemap("ǅ") == casemap("Ǆ")  # the titlecase of a digraph
    assert casemap("straße") != casemap("STRASSE")  # simple mapping only: ß stays one character


def test_message_ids_are_read_leniently():
    assert message_ids("<a@b> <c@d>") == ["a@b", "c@d"]
    assert message_ids("comment <a@b> (x) <c\r\n @d>") == ["a@b", "c@d"]
    assert message_ids("no brackets") == []
    assert message_ids("<> <  >") == []


def test_sort_keys_from_a_header():
    raw = (b"From: =?utf-8?q?=C3=89lise?= <Elise@Example.org>, bob@x.org\r\n"
           b"To: Undisclosed:;, \"Carl\" <carl@y.org>\r\n"
           b"Cc: <dan@z.org>\r\n"
           b"Subject: =?utf-8?q?Re:_caf=C3=A9?=\r\n"
           b"Date: Mon, 4 Mar 2024 10:00:00 +0100\r\n"
           b"Message-ID: <m1@x.org>\r\n"
           b"In-Reply-To: <p@x.org>\r\n"
           b"\r\nbody\r\n")
    keys = sort_keys(raw)
    assert keys.subject == casemap("café") and keys.reply
    assert keys.from_ == "ELISE" and keys.display_from == casemap("Élise")
    assert keys.to == "CARL" and keys.display_to == "CARL"  # the empty group is skipped
    assert keys.cc == "DAN" and keys.sent == 1709542800.0
    assert keys.message_id == "m1@x.org" and keys.references == ("p@x.org",)


def test_sort_keys_of_a_bare_message():
    keys = sort_keys(b"X-Nothing: here\r\n\r\nbody\r\n")
    assert (keys.sent, keys.subject, keys.from_, keys.display_to, keys.message_id, keys.references) == (
        None, "", "", "", "", ())
    # an address without a display name shows as the address itself (RFC 5957 §3)
    assert sort_keys(b"From: bob@x.org\r\nReferences: <a@b>\r\n  <c@d>\r\nIn-Reply-To: <e@f>\r\n\r\n").display_from \
        == "BOB@X.ORG"
    assert sort_keys(b"References: <a@b>\r\n  <c@d>\r\nIn-Reply-To: <e@f>\r\n\r\n").references == ("a@b", "c@d")
    assert sort_keys(b"Date: yesterday\r\n\r\n").sent is None
