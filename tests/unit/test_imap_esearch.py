"""ESEARCH replies, saved results and partial pages as pure functions."""

from appliance.imap.esearch import esearch_line, partial_slice, saved_uids


def test_partial_slice_from_either_end():
    items = list(range(1, 11))
    assert partial_slice(items, (1, 3)) == [1, 2, 3]
    assert partial_slice(items, (3, 1)) == [1, 2, 3]
    assert partial_slice(items, (-1, -3)) == [8, 9, 10]
    assert partial_slice(items, (-9, -20)) == [1, 2]
    assert partial_slice(items, (11, 20)) == [] and partial_slice(items, (-11, -20)) == []


def test_saved_uids_follow_rfc5182_2_4():
    uids = [3, 5, 9]
    assert saved_uids(frozenset({"SAVE"}), uids, None) == uids
    assert saved_uids(frozenset({"SAVE", "MIN"}), uids, None) == [3]
    assert saved_uids(frozenset({"SAVE", "MIN", "MAX"}), uids, None) == [3, 9]
    assert saved_uids(frozenset({"SAVE", "MIN", "COUNT"}), uids, None) == uids
    assert saved_uids(frozenset({"SAVE", "PARTIAL"}), uids, (-1, -1)) == [9]
    assert saved_uids(frozenset({"SAVE", "MAX"}), [], None) == []


def test_esearch_line():
    line = esearch_line(b"t1", True, [1, 2, 3, 7], frozenset({"ALL", "COUNT", "PARTIAL"}), (-2, -1), 42)
    assert line == b'* ESEARCH (TAG "t1") UID ALL 1:3,7 COUNT 4 PARTIAL (-1:-2 3,7) MODSEQ 42\r\n'
    line = esearch_line(b"t3", False, [1, 2, 3, 4, 5], frozenset({"PARTIAL"}), (6, 1), None)
    assert line == b'* ESEARCH (TAG "t3") PARTIAL (1:6 1:5)\r\n'
    line = esearch_line(b"t2", False, [], frozenset({"MIN", "COUNT"}), None, None)
    assert line == b'* ESEARCH (TAG "t2") COUNT 0\r\n'


def test_esearch_line_in_sort_order():
    # RFC 5267 §3.1: SORT's MIN and MAX are its first and last, ALL and PARTIAL keep the order
    line = esearch_line(b"t4", False, [5, 3, 4, 2, 1], frozenset({"MIN", "MAX", "ALL", "PARTIAL"}), (4, 2), None,
                        ordered=True)
    assert line == b'* ESEARCH (TAG "t4") MIN 5 MAX 1 ALL 5,3:4,2,1 PARTIAL (2:4 3:4,2)\r\n'
