"""SEARCHRES (RFC 5182) and PARTIAL (RFC 9394) against a live server.

imaptest group: search-partial."""

from tests.protocol.imapconv import deliver, message, session


def mailbox_of(server, count: int, address: str = "alice@example.org"):
    conv = session(server, address)
    for n in range(1, count + 1):
        deliver(server, address, message(f"message {n}", extra="X-Even: yes\r\n" if n % 2 == 0 else ""))
    conv.transact("OK", "SELECT INBOX")
    return conv


def fetched(lines) -> list[bytes]:
    return [line for line in lines if b" FETCH " in line]


def test_saved_result_in_fetch_store_copy_and_search(server):
    conv = mailbox_of(server, 6)
    assert b"SEARCHRES" in b" ".join(conv.transact("OK", "CAPABILITY"))
    # SAVE alone answers nothing (RFC 5182 §2.1)
    assert conv.transact("OK", "UID SEARCH RETURN (SAVE) HEADER X-Even yes") == []
    lines = fetched(conv.transact("OK", "UID FETCH $ (UID)"))
    assert [line.split(b"UID ")[1] for line in lines] == [b"2)", b"4)", b"6)"]
    assert len(fetched(conv.transact("OK", "FETCH $ (FLAGS)"))) == 3  # "$" in a sequence command too
    conv.transact("OK", "UID STORE $ +FLAGS.SILENT (\\Flagged)")
    (line,) = conv.transact("OK", "SEARCH FLAGGED")
    assert line == b"* SEARCH 2 4 6"
    conv.transact("OK", "CREATE Saved")
    conv.transact("OK", "UID COPY $ Saved")
    assert b"COPYUID" in conv.last and b" 2,4,6 1,2,3]" in conv.last
    # "$" as a search key, combined with others
    (line,) = conv.transact("OK", "SEARCH $ 3:6")
    assert line == b"* SEARCH 4 6"
    # SAVE with MIN and MAX keeps only those two (RFC 5182 §2.4), and ESEARCH still answers
    (line,) = conv.transact("OK", "SEARCH RETURN (SAVE MIN MAX) ALL")
    assert line.endswith(b"MIN 1 MAX 6")
    assert len(fetched(conv.transact("OK", "UID FETCH $ FLAGS"))) == 2


def test_saved_result_loses_expunged_and_resets_on_select(server):
    conv = mailbox_of(server, 4)
    conv.transact("OK", "SEARCH RETURN (SAVE) 2:4")
    conv.transact("OK", "STORE 3 +FLAGS.SILENT (\\Deleted)")
    conv.transact("OK", "EXPUNGE")
    lines = fetched(conv.transact("OK", "UID FETCH $ UID"))
    assert [line.split(b"UID ")[1] for line in lines] == [b"2)", b"4)"]
    # a failed SAVE empties the result
    conv.transact("NO", "SEARCH RETURN (SAVE) CHARSET KOI8-R ALL")
    assert fetched(conv.transact("OK", "UID FETCH $ UID")) == []
    conv.transact("OK", "SEARCH RETURN (SAVE) ALL")
    conv.transact("OK", "SELECT INBOX")
    assert fetched(conv.transact("OK", "FETCH $ UID")) == []  # RFC 5182 §2.1: SELECT starts with an empty result


def test_partial_search_and_fetch(server):
    conv = mailbox_of(server, 7)
    assert b"PARTIAL" in b" ".join(conv.transact("OK", "CAPABILITY"))
    (line,) = conv.transact("OK", "UID SEARCH RETURN (PARTIAL 2:4) ALL")
    assert line.endswith(b"UID PARTIAL (2:4 2:4)")
    (line,) = conv.transact("OK", "SEARCH RETURN (PARTIAL -3:-1 COUNT) NOT 7")
    assert line.endswith(b"COUNT 6 PARTIAL (-1:-3 4:6)")
    (line,) = conv.transact("OK", "SEARCH RETURN (PARTIAL 4:2) ALL")
    assert line.endswith(b"PARTIAL (2:4 2:4)")
    (line,) = conv.transact("OK", "SEARCH RETURN (PARTIAL 10:20) ALL")
    assert line.endswith(b"PARTIAL (10:20 NIL)")
    # a page can be saved and used
    conv.transact("OK", "UID SEARCH RETURN (SAVE PARTIAL -1:-2) ALL")
    lines = fetched(conv.transact("OK", "UID FETCH $ UID"))
    assert [line.split(b"UID ")[1] for line in lines] == [b"6)", b"7)"]
    lines = fetched(conv.transact("OK", "UID FETCH 1:* (FLAGS) (PARTIAL -1:-2)"))
    assert [line.split(b" ")[1] for line in lines] == [b"6", b"7"]
    lines = fetched(conv.transact("OK", "UID FETCH 2:* (FLAGS) (PARTIAL 1:2)"))
    assert [line.split(b" ")[1] for line in lines] == [b"2", b"3"]
    conv.transact("BAD", "SEARCH RETURN (PARTIAL 0:2) ALL")
    conv.transact("BAD", "SEARCH RETURN (PARTIAL -1:3) ALL")
