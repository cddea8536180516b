"""DATA framing and content checks, fed through a fake connection in arbitrary pieces."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.net.conn import ConnectionClosed
from appliance.smtp.session import DataOutcome, check_content, has_bare_newline, lines_fit, read_data, unstuff


class Pieces:
    """Stands in for net.Connection: read_some() hands out the given pieces in order."""

    def __init__(self, pieces):
        self.pieces = [bytes(p) for p in pieces if p]

    def read_some(self) -> bytes:
        if not self.pieces:
            raise ConnectionClosed()
        return self.pieces.pop(0)

    def unread(self, data: bytes) -> None:
        if data:
            self.pieces.insert(0, data)

    def rest(self) -> bytes:
        return b"".join(self.pieces)


def split_everywhere(data: bytes):
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


STREAM = b"Subject: x\r\n\r\n..a\r\nb\r\n.\r\nNEXT\r\n"


@pytest.mark.parametrize("pieces", list(split_everywhere(STREAM)))
def test_marker_found_wherever_the_stream_is_cut(pieces):
    conn = Pieces(pieces)
    content, outcome = read_data(conn, 1000)
    assert (content, outcome) == (b"Subject: x\r\n\r\n..a\r\nb\r\n", DataOutcome.NOMINAL)
    assert conn.rest() == b"NEXT\r\n"


def test_byte_by_byte():
    conn = Pieces([bytes([b]) for b in STREAM])
    assert read_data(conn, 1000)[0] == b"Subject: x\r\n\r\n..a\r\nb\r\n"
    assert conn.rest() == b"NEXT\r\n"


def test_empty_message():
    conn = Pieces([b".\r\nQUIT\r\n"])
    assert read_data(conn, 10) == (b"", DataOutcome.NOMINAL)
    assert conn.rest() == b"QUIT\r\n"


@pytest.mark.parametrize("fake", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\r\n"])
def test_bare_endings_do_not_end(fake):
    conn = Pieces([b"a" + fake + b"b\r\n.\r\n"])
    content, outcome = read_data(conn, 1000)
    assert content == b"a" + fake + b"b\r\n" and outcome is DataOutcome.NOMINAL


@pytest.mark.parametrize("cut", range(0, 40, 3))
def test_too_big_reads_on_to_the_marker(cut):
    stream = b"x" * 30 + b"\r\n.\r\nNEXT"
    conn = Pieces([stream[:cut], stream[cut:]])
    assert read_data(conn, 10) == (None, DataOutcome.TOO_BIG)
    assert conn.rest() == b"NEXT"


def test_too_big_keeps_memory_bounded():
    conn = Pieces([b"y" * 65536] * 200 + [b"\r\n.\r\n"])
    assert read_data(conn, 100_000) == (None, DataOutcome.TOO_BIG)


def test_exactly_at_the_limit_is_fine():
    conn = Pieces([b"12345678\r\n.\r\n"])
    assert read_data(conn, 10) == (b"12345678\r\n", DataOutcome.NOMINAL)
    conn = Pieces([b"123456789\r\n.\r\n"])
    assert read_data(conn, 10) == (None, DataOutcome.TOO_BIG)


def test_unstuff():
    assert unstuff(b"..\r\n...\r\n.a\r\nb.\r\n") == b".\r\n..\r\na\r\nb.\r\n"
    assert unstuff(b"") == b""


def test_bare_newline_detection():
    assert not has_bare_newline(b"a\r\nb\r\n")
    for bad in (b"a\nb", b"a\rb", b"a\n\rb", b"a\r\r\nb", b"a\r\n\n"):
        assert has_bare_newline(bad)


def test_check_content_policies():
    assert check_content(b"a\nb\r\n", "reject", stuffed=True, binary=False)[1] is DataOutcome.BARE_NEWLINE
    assert check_content(b"a\n.b\rc\r\n", "normalize", stuffed=True, binary=False) == (b"a\r\nb\r\nc\r\n",
                                                                                   DataOutcome.NOMINAL)
    assert check_content(b"a\nb", "reject", stuffed=False, binary=True) == (b"a\nb", DataOutcome.NOMINAL)
    assert check_content(b"x" * 999 + b"\r\n", "reject", stuffed=True, binary=False)[1] is DataOutcome.LINE_TOO_LONG


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r\n.\r\n", b"")), max_size=8),
       st.integers(min_value=1, max_value=17))
def test_framing_round_trip(lines, piece):
    """Whatever the content, stuffing it and cutting the stream anywhere gives it back."""
    content = b"".join(line.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n" for line in lines)
    stuffed = (b"\r\n" + content).replace(b"\r\n.", b"\r\n..")[2:]
    stream = stuffed + b".\r\n"
    conn = Pieces([stream[i:i + piece] for i in range(0, len(stream), piece)])
    got, outcome = read_data(conn, 10_000)
    assert outcome is DataOutcome.NOMINAL and unstuff(got) == content


_PIECES = st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"xxxxxxx", b".."]), max_size=30).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(_PIECES, st.integers(min_value=0, max_value=12))
def test_quick_checks_agree_with_the_plain_definitions(content, limit):
    """The one-pass checks say what splitting, counting and prefixing say."""
    assert lines_fit(content, limit) == (max(map(len, content.split(b"\r\n"))) <= limit)
    crlf = content.count(b"\r\n")
    assert has_bare_newline(content) == (content.count(b"\r") != crlf or content.count(b"\n") != crlf)
    assert unstuff(content) == (b"\r\n" + content).replace(b"\r\n.", b"\r\n")[2:]
