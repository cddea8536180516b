"""What SEARCH returns: ESEARCH replies (RFC 4731), the saved result "$" (RFC 5182)
and paged results (RFC 9394 PARTIAL). Pure functions over the sorted hits.
"""

from __future__ import annotations

from appliance.imap import replies


def partial_slice(items: list, partial: tuple[int, int]) -> list:
    """The items a partial range names, ``items`` in ascending order (RFC 9394 §3.1).

    "3:5" are the 3rd to 5th; "-1:-10" the last ten. Either end may come first.
    """
    first, last = sorted((abs(partial[0]), abs(partial[1])))
    if partial[0] > 0:
        return items[first - 1:last]
    return items[max(0, len(items) - last):max(0, len(items) - first + 1)]


def _range_text(partial: tuple[int, int]) -> bytes:
    """The range as answered: the end nearer the start of the results first ("4:2" is "2:4")."""
    first, last = sorted(partial, key=abs)
    return b"%d:%d" % (first, last)


def saved_uids(returns: frozenset[str], uids: list[int], partial: tuple[int, int] | None) -> list[int]:
    """The UIDs that SAVE keeps (RFC 5182 §2.4): only MIN and/or MAX when those alone are asked,
    the page when PARTIAL is asked (RFC 9394 §3.1), else every hit."""
    if not uids:
        return []
    if partial is not None:
        return partial_slice(uids, partial)
    if returns & {"MIN", "MAX"} and not returns & {"ALL", "COUNT"}:
        return sorted({uids[0] if "MIN" in returns else uids[-1], uids[-1] if "MAX" in returns else uids[0]})
    return uids


def result_modseq(returns, hits: list) -> int:
    """RFC 7162 §3.1.5 (RFC 4731 §3.2): the MODSEQ of an ESEARCH is that of the messages returned.

    MIN or MAX alone returns one message; both, two; anything else all of ``hits`` (rows
    with a ``modseq``, in UID order).
    """
    if returns and set(returns) <= {"MIN", "MAX"}:
        shown = ([hits[0]] if "MIN" in returns else []) + ([hits[-1]] if "MAX" in returns else [])
        return max(r.modseq for r in shown)
    return max(r.modseq for r in hits)


def esearch_line(tag: bytes, uid: bool, numbers: list[int], returns: frozenset[str],
                 partial: tuple[int, int] | None, modseq: int | None, ordered: bool = False) -> bytes:
    """``* ESEARCH (TAG "t") [UID] ...`` with the asked-for results (RFC 4731 §3.1, RFC 9394 §3.1).

    ``numbers`` ascending, or in sort order when ``ordered`` (SORT RETURN, RFC 5267 §3.1);
    ``modseq`` the ``result_modseq`` of the hits when the search used MODSEQ (RFC 7162 §3.1.5),
    else None.
    """
    as_set = replies.ordered_set if ordered else replies.sequence_set
    line = b"* ESEARCH (TAG " + replies.quote(tag) + b")"
    if uid:
        line += b" UID"
    if numbers:
        if "MIN" in returns:
            line += b" MIN %d" % numbers[0]
        if "MAX" in returns:
            line += b" MAX %d" % numbers[-1]
        if "ALL" in returns:
            line += b" ALL " + as_set(numbers)
    if "COUNT" in returns:
        line += b" COUNT %d" % len(numbers)
    if partial is not None:
        page = partial_slice(numbers, partial)
        line += b" PARTIAL (" + _range_text(partial) + b" " + (as_set(page) if page else b"NIL") + b")"
    if modseq is not None and numbers:
        line += b" MODSEQ %d" % modseq
    return line + b"\r\n"
