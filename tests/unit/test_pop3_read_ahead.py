"""POP3 read-ahead: which messages a RETR that misses reads with the one asked for."""

from appliance.pop3.session import READ_AHEAD_BYTES, READ_AHEAD_MESSAGES, Message, ReadAhead


def maildrop(count: int, size: int = 1000) -> list[Message]:
    return [Message(uid=100 + n, size=size, unique_id=b"1.%d" % (100 + n), seen=False) for n in range(1, count + 1)]


def everything(number, message) -> bool:
    return True


def test_the_window_doubles_while_the_client_reads_in_order():
    messages, ahead = maildrop(200), ReadAhead()
    number, windows = 1, []
    while number <= 100:
        uids = ahead.plan(number, messages, everything)
        assert uids == [m.uid for m in messages[number - 1:number - 1 + len(uids)]]
        windows.append(len(uids))
        number += len(uids)
    assert windows[:6] == [2, 4, 8, 16, 32, 32]
    assert max(windows) == READ_AHEAD_MESSAGES


def test_a_jump_reads_only_the_message_asked_for():
    messages, ahead = maildrop(200), ReadAhead()
    assert len(ahead.plan(1, messages, everything)) == 2
    assert len(ahead.plan(3, messages, everything)) == 4
    assert ahead.plan(50, messages, everything) == [messages[49].uid]
    assert ahead.plan(10, messages, everything) == [messages[9].uid]
    assert len(ahead.plan(11, messages, everything)) == 2  # in order again: it grows again


def test_the_window_stops_at_the_byte_budget_but_always_holds_the_message_asked_for():
    messages = maildrop(100, size=READ_AHEAD_BYTES // 3)
    ahead = ReadAhead()
    assert len(ahead.plan(1, messages, everything)) == 2
    assert len(ahead.plan(3, messages, everything)) == 4
    assert len(ahead.plan(7, messages, everything)) == 4  # not 8: the one asked for + 3 within the budget
    big = maildrop(3, size=10 * READ_AHEAD_BYTES)
    assert ReadAhead().plan(1, big, everything) == [big[0].uid]


def test_marked_and_gone_messages_are_not_read_ahead():
    messages, ahead = maildrop(20), ReadAhead()
    messages[3].gone = True
    marked = {3, 5}
    wanted = lambda number, message: number not in marked and not message.gone  # noqa: E731
    ahead.plan(1, messages, wanted)  # 1, 2
    assert ahead.plan(3, messages, wanted) == [messages[2].uid, messages[5].uid, messages[6].uid, messages[7].uid]


def test_texts_are_handed_out_once_and_forgotten_on_expunge():
    ahead = ReadAhead()
    ahead.keep({1: b"a", 2: b"b", 3: b"c"})
    assert ahead.take(1) == b"a" and ahead.take(1) is None
    ahead.forget((2, 99))
    assert ahead.take(2) is None and ahead.take(3) == b"c"
