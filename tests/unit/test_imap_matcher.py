"""SEARCH evaluation over message facts, without a store."""

import datetime as dt
from types import SimpleNamespace

import pytest

from appliance.imap.matcher import Candidate, Context, matches, needs_headers
from appliance.imap.parse import Cursor
from appliance.imap.search import parse_search

INFO = SimpleNamespace(
    subject="Quarterly Grüße", from_="Carol <carol@example.net>", to="alice@example.org", cc="",
    date=dt.datetime(2024, 3, 5, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    header_search="From: Carol <carol@example.net>\nBcc: boss@example.org\nX-Mailer: mutt 2.0\nSubject: Quarterly Grüße\n",
)


def message(**overrides) -> Candidate:
    fields = dict(seq=3, uid=30, flags=frozenset({"\\Seen", "$Work"}), size=1200,
                  internaldate=dt.datetime(2024, 3, 6, 1, 0, tzinfo=dt.timezone.utc).timestamp(),
                  modseq=77, recent=False, info=INFO)
    fields.update(overrides)
    return Candidate(**fields)


def check(query: bytes, msg: Candidate | None = None, text_hits=()) -> bool:
    program = parse_search(Cursor(b" " + query + b"\r\n"))
    ctx = Context(largest_seq=5, largest_uid=50, find_text=lambda needle, where: set(text_hits))
    return matches(program.criteria, msg or message(), ctx)


@pytest.mark.parametrize("query, expected", [
    (b"ALL", True), (b"SEEN", True), (b"UNSEEN", False), (b"ANSWERED", False), (b"UNANSWERED", True),
    (b"KEYWORD $Work", True), (b"UNKEYWORD $Work", False), (b"KEYWORD $work", False),
    (b"NEW", False), (b"OLD", True), (b"RECENT", False),
    (b"LARGER 1199", True), (b"LARGER 1200", False), (b"SMALLER 1201", True),
    (b"3", True), (b"4:*", False), (b"*", False), (b"UID 30", True), (b"UID 31:*", False),
    (b"ON 6-Mar-2024", True), (b"BEFORE 6-Mar-2024", False), (b"SINCE 6-Mar-2024", True),
    (b"SENTON 5-Mar-2024", True), (b"SENTSINCE 6-Mar-2024", False),  # the date as written
    (b"FROM CAROL", True), (b"TO alice", True), (b"CC carol", False), (b"BCC boss", True),
    (b"SUBJECT {6}\r\ngr\xc3\xbc\xc3\x9f", True), (b'HEADER X-Mailer "MUTT 2"', True),
    (b'HEADER X-Spam ""', False), (b'HEADER x-mailer ""', True),
    (b"MODSEQ 77", True), (b"MODSEQ 78", False),
    (b"OR UNSEEN LARGER 1000", True), (b"NOT (SEEN FROM carol)", False), (b"OR NOT SEEN NOT 3", False),
])
def test_keys(query, expected):
    assert check(query) is expected


def test_new_means_recent_and_unseen():
    assert check(b"NEW", message(recent=True, flags=frozenset()))
    assert not check(b"NEW", message(recent=True))


def test_text_keys_use_the_index_answer():
    assert check(b"TEXT quarterly", text_hits={30})
    assert not check(b"BODY quarterly", text_hits={31})


def test_header_keys_are_detected():
    assert needs_headers(parse_search(Cursor(b" OR SEEN (NOT FROM x)\r\n")).criteria)
    assert not needs_headers(parse_search(Cursor(b" OR SEEN (NOT TEXT x)\r\n")).criteria)
