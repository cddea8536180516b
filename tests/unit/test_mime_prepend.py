"""Prepending trace and filter headers reuses the analysis instead of parsing again."""

import pytest
from hypothesis import given, settings, strategies as st

from appliance.mime import analyze, header_end, header_fields, normalize_crlf, prepend_header
from appliance.store.messages import prepare
from tests.unit.test_mime import NESTED

PLAIN = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
NO_HEADER = b"\r\njust a body\r\n"
TRACE = (b"Return-Path: <bob@remote.test>\r\n"
         b"X-Spam-Status: No, score=0.4\r\n"
         b"Authentication-Results: mail.example.org;\r\n\tspf=pass smtp.mailfrom=remote.test\r\n"
         b"Received: from mx.remote.test ([192.0.2.1])\r\n\tby mail.example.org; Fri, 27 Nov 2026 12:00:00 +0000\r\n")


@pytest.mark.parametrize("raw", [PLAIN, NESTED, NO_HEADER], ids=["plain", "nested", "no-header"])
def test_prepended_trace_headers_give_the_same_analysis_as_parsing_again(raw):
    assert prepend_header(analyze(raw), TRACE) == analyze(TRACE + raw)


@pytest.mark.parametrize("prefix", [
    b"Subject: replaced\r\n",            # the envelope reads it
    b"Content-Type: text/html\r\n",      # the structure reads it
    b"MIME-Version: 1.0\r\n",
    b"X-Ok: 1\r\n\r\n",                  # a blank line ends the header
    b"no colon here\r\n",
    b" continuation first\r\n",
    b"X-Unterminated: 1",
])
def test_anything_that_could_change_the_analysis_is_left_to_a_full_parse(prefix):
    assert prepend_header(analyze(NESTED), prefix) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Received", "X-Spam-Score", "Return-Path", "X-Filter"]),
                          st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)),
                min_size=1, max_size=4))
def test_any_safe_prefix_matches_a_fresh_parse(fields):
    prefix = b"".join(f"{name}: {value}\r\n".encode() for name, value in fields)
    assert prepend_header(analyze(NESTED), prefix) == analyze(prefix + NESTED)


def _known(raw: bytes) -> tuple:
    fields = header_fields(raw[:header_end(raw)])
    return raw, analyze(raw, fields=fields), fields


@pytest.mark.parametrize("raw, prefix", [
    (NESTED, TRACE),
    (NESTED, b"X-Filter: one\nX-Other: two\r\n"),
    (NESTED, b"X-Filter: a\rb\r\n"),
    (NESTED, b"References: <added@remote.test>\r\n"),  # no part of the analysis, but a THREAD key
], ids=["crlf", "bare-lf", "bare-cr", "sort-key"])
def test_storing_a_known_message_with_headers_prepended_is_storing_it_parsed_afresh(raw, prefix):
    # The MDA hands the store its analysis of the message as received; the store checks
    # only what was prepended for bare line ends, and must keep what a full pass keeps.
    shifted, fresh = prepare(prefix + raw, _known(raw)), prepare(prefix + raw)
    assert shifted.raw == fresh.raw == normalize_crlf(prefix + raw)
    assert (shifted.sha256, shifted.info, shifted.info_json, shifted.sort_row) == \
        (fresh.sha256, fresh.info, fresh.info_json, fresh.sort_row)


def test_a_prepended_field_that_a_first_line_continues_gets_its_sort_keys_from_a_full_parse():
    # The continuation line that opens the message belongs to the field added above it
    # (RFC 5322 §2.2.3), so that field's value, here a THREAD key, is only known whole.
    raw = b" <continued@remote.test>\r\n" + PLAIN
    prefix = b"References: <added@remote.test>\r\n"
    shifted, fresh = prepare(prefix + raw, _known(raw)), prepare(prefix + raw)
    assert shifted.sort_row == fresh.sort_row
    assert shifted.sort_row[-1] == "added@remote.test continued@remote.test"
