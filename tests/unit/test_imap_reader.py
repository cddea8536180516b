"""Assembling a whole command with its literals (RFC 3501 §7.5, RFC 7888 LITERAL+)."""

import pytest

from appliance.imap import replies
from appliance.imap.errors import CommandTooLong, LiteralTooBig
from appliance.imap.reader import CommandReader
from appliance.net.conn import LineTooLong


class ScriptedConn:
    """Just the Connection calls the reader uses, over a fixed byte stream."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.written = b""
        self.sent_before_read: list[bytes] = []  # what we had written when each literal was read

    def read_line(self, limit: int) -> bytes:
        end = self.data.index(b"\n") + 1
        line, self.data = self.data[:end], self.data[end:]
        return line

    read_command_line = read_line

    def read_exact(self, n: int) -> bytes:
        self.sent_before_read.append(self.written)
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk

    def write(self, data: bytes) -> None:
        self.written += data

    def flush(self) -> None:
        pass


def test_plain_line():
    conn = ScriptedConn(b"a1 NOOP\r\na2 NOOP\r\n")
    assert CommandReader(conn, 8192, 65536).read(100) == b"a1 NOOP\r\n"
    assert conn.data == b"a2 NOOP\r\n"


def test_synchronising_literal_gets_continuation_before_the_data():
    conn = ScriptedConn(b"a1 LOGIN {3}\r\nbob {6}\r\nsecret\r\n")
    command = CommandReader(conn, 8192, 65536).read(100)
    assert command == b"a1 LOGIN {3}\r\nbob {6}\r\nsecret\r\n"
    assert conn.sent_before_read == [replies.CONTINUE_LITERAL, replies.CONTINUE_LITERAL * 2]


def test_non_synchronising_literal_is_read_without_continuation():
    conn = ScriptedConn(b"a1 APPEND INBOX {5+}\r\nhello\r\n")
    assert CommandReader(conn, 8192, 65536).read(100) == b"a1 APPEND INBOX {5+}\r\nhello\r\n"
    assert conn.written == b""


def test_oversize_synchronising_literal_is_refused_before_continuation():
    conn = ScriptedConn(b"a1 APPEND INBOX {5000}\r\n")
    with pytest.raises(LiteralTooBig) as info:
        CommandReader(conn, 8192, 65536).read(4096)
    assert (info.value.tag, info.value.size, info.value.synchronising) == (b"a1", 5000, True)
    assert conn.written == b""


def test_oversize_non_synchronising_literal_and_literals_adding_up():
    with pytest.raises(LiteralTooBig) as info:
        CommandReader(ScriptedConn(b"a1 APPEND INBOX {99999999999999999999+}\r\n"), 8192, 65536).read(4096)
    assert not info.value.synchronising
    conn = ScriptedConn(b"a1 LOGIN {60+}\r\n" + b"x" * 60 + b" {60+}\r\n" + b"y" * 60 + b"\r\n")
    with pytest.raises(LiteralTooBig):
        CommandReader(conn, 8192, 65536).read(100)


def test_many_short_lines_hit_the_command_limit():
    data = b"a1 LOGIN " + b"{0}\r\n" * 100 + b"\r\n"
    with pytest.raises(CommandTooLong) as info:
        CommandReader(ScriptedConn(data), 8192, 200).read(100)
    assert info.value.tag == b"a1"


class TooLongConn(ScriptedConn):
    """Every line after the first ``good`` ones is too long, as Connection.read_line reports it."""

    def __init__(self, data: bytes, good: int) -> None:
        super().__init__(data)
        self.good = good

    def read_line(self, limit: int) -> bytes:
        line = super().read_line(limit)
        if self.good == 0:
            raise LineTooLong(line[:LineTooLong.HEAD])
        self.good -= 1
        return line

    read_command_line = read_line


def test_a_line_too_long_is_answered_with_the_tag_of_its_command():
    with pytest.raises(CommandTooLong) as caught:
        CommandReader(TooLongConn(b"a7 SEARCH OR ALL ALL\r\n", 0), 8192, 65536).read(100)
    assert caught.value.tag == b"a7"
    with pytest.raises(CommandTooLong) as caught:  # the tag of a later line's command is on its first line
        CommandReader(TooLongConn(b"a8 APPEND INBOX {1}\r\nx FLAGS\r\n", 1), 8192, 65536).read(100)
    assert caught.value.tag == b"a8"
    with pytest.raises(CommandTooLong) as caught:
        CommandReader(TooLongConn(b"((((\r\n", 0), 8192, 65536).read(100)
    assert caught.value.tag is None
