"""Parsing SORT, THREAD and CANCELUPDATE (RFC 5256 §5, RFC 5267 §5) into command objects."""

import pytest

from appliance.imap.commands.sorting import CancelUpdate, Sort, Thread, UidSort
from appliance.imap.parse import InvalidCommand, parse_command
from appliance.imap.search import And, Key, Not


def test_sort_with_reverse_keys_charset_and_criteria():
    cmd = parse_command(b"a UID SORT (REVERSE DATE subject) utf-8 UNSEEN NOT FROM x\r\n")
    assert isinstance(cmd, UidSort) and cmd.UID
    assert cmd.order == (("DATE", True), ("SUBJECT", False))
    assert cmd.charset == "UTF-8" and cmd.returns is None
    assert cmd.criteria == And((Key("UNSEEN"), Not(Key("FROM", b"x"))))


def test_sort_return_options():
    cmd = parse_command(b"a SORT RETURN (MIN COUNT PARTIAL 1:10 UPDATE) (SIZE) US-ASCII ALL\r\n")
    assert isinstance(cmd, Sort) and cmd.returns == frozenset({"MIN", "COUNT", "PARTIAL", "UPDATE"})
    assert cmd.partial == (1, 10)
    assert parse_command(b"a SORT RETURN () (SIZE) UTF-8 ALL\r\n").returns == frozenset({"ALL"})
    assert parse_command(b"a SORT RETURN (PARTIAL -1:-5) (SIZE) UTF-8 ALL\r\n").partial == (-1, -5)


def test_sort_return_after_the_charset():
    # clients also write RETURN after the charset; the same options are read there
    cmd = parse_command(b"a SORT (ARRIVAL) US-ASCII RETURN (PARTIAL 4:2) ALL\r\n")
    assert cmd.returns == frozenset({"PARTIAL"}) and cmd.partial == (4, 2)
    assert cmd.criteria == And((Key("ALL"),))
    assert isinstance(parse_command(b"a SORT (ARRIVAL) US-ASCII RETURN (PARTIAL 1:*) ALL\r\n"), InvalidCommand)


def test_thread_and_cancelupdate():
    cmd = parse_command(b"a THREAD references UTF-8 ALL\r\n")
    assert isinstance(cmd, Thread) and cmd.algorithm == "REFERENCES" and not cmd.UID
    cmd = parse_command(b'a CANCELUPDATE "b1" "b\\"2"\r\n')
    assert isinstance(cmd, CancelUpdate) and cmd.tags == (b"b1", b'b"2')


@pytest.mark.parametrize("line", [
    b"a SORT (SUBJECT) ALL\r\n",  # the charset is not optional
    b"a SORT () UTF-8 ALL\r\n",
    b"a SORT (SUBJECT REVERSE) UTF-8 ALL\r\n",
    b"a SORT (SUBJECT) UTF-8\r\n",
    b"a SORT RETURN (PARTIAL 0:5) (SUBJECT) UTF-8 ALL\r\n",
    b"a SORT RETURN (PARTIAL 5) (SUBJECT) UTF-8 ALL\r\n",
    b"a THREAD REFS UTF-8 ALL\r\n",
    b"a CANCELUPDATE b1\r\n",
])
def test_malformed(line):
    assert isinstance(parse_command(line), InvalidCommand)
