"""LIST wildcard matching (RFC 3501 §6.3.8)."""

import pytest

from appliance.imap.errors import CommandSyntaxError
from appliance.imap.session import ListPattern


@pytest.mark.parametrize("reference, pattern, name, expected", [
    ("", "*", "a/b/c", True),
    ("", "%", "a/b", False),
    ("", "%/%", "a/b", True),
    ("", "inbox", "INBOX", True),
    ("", "Inbox/%", "INBOX/Sub", True),
    ("", "inboxes", "Inboxes", False),  # only the top-level name INBOX is case-insensitive
    ("Projects/", "%", "Projects/2024", True),
    ("Projects/", "%", "Projects/2024/Q1", False),
    ("", "a*c", "ab/dc", True),
    ("", "a%c", "ab/c", False),
    ("", "Entw&APw-rfe", "Entw&APw-rfe", True),
])
def test_matching(reference, pattern, name, expected):
    assert ListPattern(reference, pattern).fullmatch(name) is expected


@pytest.mark.timeout(60)  # a backtracking matcher would hang here for hours; a linear one answers at once
def test_hostile_patterns_are_answered():
    assert not ListPattern("", "%" * 50000).fullmatch("a" * 500 + "/")
    assert not ListPattern("", "%a" * 16).fullmatch("a" * 511 + "b")
    for pattern in ("a%" * 17, "x" * 700):
        with pytest.raises(CommandSyntaxError):
            ListPattern("", pattern)
