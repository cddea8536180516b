"""IMAP URLs as CATENATE reads them (RFC 5092 imessagepart)."""

import pytest

from appliance.imap.imapurl import BadUrl, parse_message_url


def test_absolute_path_and_relative_urls():
    url = parse_message_url("imap://alice%40example.org;AUTH=*@mail.example.org:143/INBOX;UIDVALIDITY=7/;UID=3"
                            "/;SECTION=1.2/;PARTIAL=10.20")
    assert (url.user, url.host, url.mailbox, url.uidvalidity, url.uid) == (
        "alice@example.org", "mail.example.org", "INBOX", 7, 3)
    assert (url.section, url.partial) == ("1.2", (10, 20))
    url = parse_message_url("/Work/Caf%C3%A9/;UID=9/;SECTION=HEADER.FIELDS%20(SUBJECT)")
    assert (url.user, url.host, url.mailbox, url.uidvalidity) == (None, None, "Work/Café", None)
    assert url.section == "HEADER.FIELDS (SUBJECT)"
    url = parse_message_url(";UID=4/;PARTIAL=5")
    assert (url.mailbox, url.uid, url.partial) == (None, 4, (5, None))


@pytest.mark.parametrize("text", [
    "imap://mail.example.org/INBOX", "/INBOX", "/INBOX/;UID=0", "/INBOX/;UID=x", "/;UID=1",
    "/INBOX/;UID=1/;URLAUTH=anonymous:internal", "/INBOX/;UID=1/;EXPIRE=2030-01-01T00:00:00Z",
    "http://example.org/", "INBOX/;UID=1", "/INBOX/;UID=1/;PARTIAL=1.0", "/%FF/;UID=1",
])
def test_urls_we_cannot_resolve(text):
    with pytest.raises(BadUrl):
        parse_message_url(text)
