"""THREAD algorithms (appliance.imap.thread) on known sets: RFC 5256 §3."""

from appliance.imap.thread import Message, ordered_subject, references, render


def msg(uid, message_id="", refs=(), subject="", sent=None, reply=False):
    return Message(uid, float(uid if sent is None else sent), subject, reply, message_id, tuple(refs))


def threads(messages, algorithm=references) -> bytes:
    return render(algorithm(messages), int)


def test_replies_hang_under_their_parents():
    assert threads([
        msg(1, "a", subject="S"),
        msg(2, "b", ["a"], subject="S", reply=True),
        msg(3, "c", ["a", "b"], subject="S", reply=True),
        msg(4, "d", ["a"], subject="S", reply=True),
        msg(5, "e", subject="T"),
    ]) == b"(1 (2 3)(4))(5)"


def test_missing_parents_leave_a_dummy_only_where_it_holds_threads_together():
    # 2 and 3 both answer a message that is not in the mailbox: a dummy at the top
    # keeps them together; 5's missing grandparent is only a link in a chain
    assert threads([
        msg(2, "b", ["gone"], subject="S1"),
        msg(3, "c", ["gone"], subject="S2"),
        msg(4, "d", subject="S3"),
        msg(5, "e", ["lost", "d"], subject="S3", reply=True),
        msg(6, "f", ["lost2"], subject="S4"),
    ]) == b"((2)(3))(4 5)(6)"


def test_duplicate_message_ids_count_once():
    # the second "a" gets its own container; the reply goes to the first
    assert threads([
        msg(1, "a", subject="one"),
        msg(2, "a", subject="two"),
        msg(3, "r", ["a"], subject="one", reply=True),
    ]) == b"(1 3)(2)"


def test_loops_in_references_are_not_followed():
    # a refers to b, b to a, and c references itself: no cycle may form, every message shows once
    out = threads([
        msg(1, "a", ["b"], subject="x"),
        msg(2, "b", ["a"], subject="y"),
        msg(3, "c", ["c"], subject="z"),
        msg(4, "d", ["e", "d", "e"], subject="w"),
    ])
    assert sorted(int(n) for n in out.replace(b"(", b" ").replace(b")", b" ").split()) == [1, 2, 3, 4]
    assert out == b"(2 1)(3)(4)"  # 1 said it answers b; b's own claim would close the loop


def test_a_later_message_moves_a_guessed_parent():
    # 3 first looks like a child of "a" (truncated References), then 2's full chain says it is "b"'s
    assert threads([
        msg(1, "a", subject="s"),
        msg(3, "c", ["a", "b"], subject="s", reply=True),
        msg(2, "b", ["a"], subject="s", reply=True),
    ]) == b"(1 2 3)"


def test_threads_of_one_subject_are_gathered():
    # step 6: a thread whose first message is a reply joins the original's thread; two
    # non-replies of one subject are held by a new dummy; a dummy absorbs a later one
    assert threads([
        msg(1, "a", subject="plan"),
        msg(2, "b", ["gone"], subject="plan", reply=True),
        msg(3, "c", subject="news"),
        msg(4, "d", subject="news"),
        msg(5, "e", subject=""),
        msg(6, "f", subject=""),
    ]) == b"(1 2)((3)(4))(5)(6)"


def test_sent_dates_order_threads_and_siblings():
    assert threads([
        msg(1, "a", subject="late", sent=50),
        msg(2, "b", ["a"], subject="late", sent=90, reply=True),
        msg(3, "c", ["a"], subject="late", sent=60, reply=True),
        msg(4, "d", subject="early", sent=10),
        msg(5, "e", subject="early2", sent=10),  # same date: sequence order
    ]) == b"(4)(5)(1 (3)(2))"


def test_ordered_subject():
    assert threads([
        msg(1, subject="b", sent=30),
        msg(2, subject="a", sent=20),
        msg(3, subject="b", sent=10),
        msg(4, subject="a", sent=40),
        msg(5, subject="a", sent=5),
        msg(6, subject="c", sent=1),
    ], ordered_subject) == b"(6)(5 (2)(4))(3 1)"


def test_a_long_discussion_is_no_recursion():
    chain = [msg(1, "m1", subject="s")] + [msg(i, f"m{i}", [f"m{i - 1}"], subject="s", reply=True)
                                          for i in range(2, 5001)]
    out = threads(chain)
    assert out == b"(" + b" ".join(b"%d" % i for i in range(1, 5001)) + b")"
    assert threads(chain, ordered_subject).startswith(b"(1 (2)(3)")


def test_render_maps_uids_to_what_the_client_sees():
    roots = references([msg(10, "a", subject="s"), msg(20, "b", ["a"], subject="s", reply=True)])
    assert render(roots, {10: 1, 20: 2}.get) == b"(1 2)"
