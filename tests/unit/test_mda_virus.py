"""The built-in virus checks: EICAR anywhere, blocked attachments, macro documents, MIME bombs."""

import pytest

from appliance.mda.virus import VirusFilter
from tests.mda_helpers import EICAR, Counting, incoming, plain, wire, with_attachment, zipped


def verdict(raw: bytes, **config):
    ctx = Counting(**config)
    f = VirusFilter(ctx)
    check = f.check(incoming(raw))
    try:
        return check.check_body(), ctx.stats
    finally:
        check.close()


def test_clean_message_passes():
    v, stats = verdict(wire(with_attachment("report.pdf", b"%PDF-1.4 harmless")))
    assert v.reject is None and not v.quarantine
    assert stats == {}


def test_eicar_in_plain_body_is_refused_with_554_570():
    v, stats = verdict(wire(plain(body=EICAR.decode() + "\n")))
    assert v.reject == (554, "5.7.0", v.reject[2])
    assert "EICAR" in v.reason
    assert stats == {"mda.virus": 1}


def test_eicar_in_base64_attachment():
    v, _ = verdict(wire(with_attachment("eicar.com.txt", EICAR)))
    assert v.reject and "EICAR" in v.reason


def test_eicar_inside_nested_zip():
    inner = zipped({"deep/eicar.txt": EICAR})
    v, _ = verdict(wire(with_attachment("outer.zip", zipped({"inner.zip": inner}))))
    assert v.reject and "EICAR" in v.reason and "outer.zip" in v.reason


@pytest.mark.parametrize("name", ["setup.exe", "invoice.PDF.scr", "run.js", "x.vbs", "a.bat", "b.cmd", "c.jar", "d.docm"])
def test_blocked_extensions(name):
    v, _ = verdict(wire(with_attachment(name, b"just bytes")))
    assert v.reject and "blocked attachment" in v.reason


def test_program_by_content_under_an_innocent_name():
    v, _ = verdict(wire(with_attachment("photo.jpg", b"MZ\x90\x00" + b"\x00" * 100)))
    assert v.reject and "Windows program" in v.reason


def test_blocked_name_inside_zip():
    v, _ = verdict(wire(with_attachment("docs.zip", zipped({"readme.txt": b"hi", "tool.exe": b"x"}))))
    assert v.reject and ".exe" in v.reason


def test_macro_enabled_office_file_by_content():
    docx = zipped({"[Content_Types].xml": b"<x/>", "word/document.xml": b"<w/>", "word/vbaProject.bin": b"vba"})
    v, _ = verdict(wire(with_attachment("letter.docx", docx)))
    assert v.reject and "macros" in v.reason


def test_extensions_are_configurable():
    v, _ = verdict(wire(with_attachment("setup.exe", b"just bytes")), blocked_extensions=["zzz"])
    assert v.reject is None


def test_mime_bomb_by_depth():
    raw = b"Subject: bomb\r\n"
    depth = 30
    for i in range(depth):
        raw += f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
    raw += b"Content-Type: text/plain\r\n\r\nx\r\n"
    for i in reversed(range(depth)):
        raw += f"--b{i}--\r\n".encode()
    v, _ = verdict(raw, max_mime_depth=10)
    assert v.reject and "MIME bomb" in v.reason


def test_mime_bomb_by_part_count():
    m = plain()
    for i in range(30):
        m.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=f"f{i}.bin")
    v, _ = verdict(wire(m), max_mime_parts=10)
    assert v.reject and "MIME bomb" in v.reason


def test_quarantine_action():
    v, _ = verdict(wire(plain(body=EICAR.decode())), virus_action="quarantine")
    assert v.quarantine and v.reject is None
