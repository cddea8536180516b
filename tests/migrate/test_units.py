"""The pieces of migration without a server: mbox quoting, status headers, LIST parsing, fetch batches."""

from __future__ import annotations

import io

from appliance.migrate import headers, mbox
from appliance.migrate.imap import ImapImport, local_name, parse_list
from appliance.migrate.source import file_to_level, level_to_file


def test_mbox_quoting_round_trips_every_from_line(tmp_path):
    raw = b"Subject: x\r\n\r\nFrom me\r\n>From you\r\n>>From them\r\nFrom\r\nno From here\r\n"
    out = io.BytesIO()
    mbox.write(out, raw, frozenset({"\\Seen", "$Work"}), 1_700_000_000)
    (tmp_path / "f.mbox").write_bytes(out.getvalue())
    assert b"\n>From me\n>>From you\n>>>From them\nFrom\n" in out.getvalue()
    [message] = list(mbox.read(tmp_path / "f.mbox", "INBOX").messages())
    assert message.raw.replace(b"\n", b"\r\n") == raw
    assert message.flags == {"\\Seen", "$Work"} and message.internaldate == 1_700_000_000


def test_status_headers_come_out_with_their_folded_lines_and_nothing_else():
    text = (b"Subject: s\nX-Keywords: one,\n two\nStatus: R\nX-Status: DT\nX-Other: keep\n\n"
            b"Status: body text stays\n")
    kept, flags = headers.take_status(text)
    assert kept == b"Subject: s\nX-Other: keep\n\nStatus: body text stays\n"
    assert flags == {"one", "two", "\\Seen", "\\Deleted", "\\Draft"}


def test_list_responses_with_quoted_literal_and_nil_delimiter_names():
    data = [b'(\\HasNoChildren \\Sent) "/" "Sent Items"', (b'(\\HasNoChildren) "." {9}', b"Work.Plan"),
            b'(\\Noselect) NIL Top', b'(\\All \\HasNoChildren) "/" "[Gmail]/All Mail"']
    parsed = parse_list(data)
    assert parsed[0] == ({"\\Hasnochildren", "\\Sent"}, "/", b"Sent Items")
    assert parsed[1][1:] == (".", b"Work.Plan") and local_name(parsed[1][2], ".") == "Work/Plan"
    assert parsed[2][0] == {"\\Noselect"} and parsed[2][1] is None
    assert local_name(b"B&APw-ro", "/") == "Büro" and local_name(b"inbox", "/") == "INBOX"


def test_fetch_batches_are_bounded_by_count_and_bytes():
    uids = list(range(1, 121))
    sizes = {uid: 1000 for uid in uids} | {60: 40 * 1024 * 1024}
    chunks = list(ImapImport._chunks(uids, sizes))
    assert [len(c) for c in chunks] == [50, 9, 1, 50, 10]
    assert sum(chunks, []) == uids


def test_folder_levels_become_safe_file_names_and_back():
    for level in ("..", ".hidden", "a.b", "Ünï", "&amp"):
        for every_dot in (False, True):
            name = level_to_file(level, every_dot)
            assert not name.startswith(".") and "/" not in name and name.isascii()
            assert file_to_level(name) == level


def test_mbox_with_crlf_line_ends(tmp_path):
    (tmp_path / "crlf").write_bytes(b"From a Tue Nov 14 22:13:20 2023\r\nSubject: x\r\nStatus: RO\r\n\r\nStatus: in body\r\n\r\n")
    [message] = list(mbox.read(tmp_path / "crlf", "INBOX").messages())
    assert message.raw == b"Subject: x\n\nStatus: in body\n" and message.flags == {"\\Seen"}


class FakeList:
    def __init__(self, lines):
        self.lines = lines

    def list(self):
        return "OK", self.lines


def test_virtual_and_unselectable_folders_are_left_out_and_usual_names_mapped():
    from appliance.migrate.imap import folders
    chosen, skipped = folders(FakeList([
        b'(\\HasNoChildren) "/" "INBOX"', b'(\\Noselect \\HasChildren) "/" "[Gmail]"',
        b'(\\All \\HasNoChildren) "/" "[Gmail]/All Mail"', b'(\\Flagged \\HasNoChildren) "/" "[Gmail]/Starred"',
        b'(\\HasNoChildren) "/" "[Gmail]/Sent Mail"', b'(\\HasNoChildren) "/" "Deleted Items"',
        b'(\\HasNoChildren \\Junk) "/" "Bulk"', b'(\\HasNoChildren) "/" "Projects/2024"']))
    assert [(f.name, f.special_use) for f in chosen] == [
        ("INBOX", None), ("[Gmail]/Sent Mail", "\\Sent"), ("Deleted Items", "\\Trash"), ("Bulk", "\\Junk"),
        ("Projects/2024", None)]
    assert skipped == ["[Gmail]/All Mail", "[Gmail]/Starred"]
