"""SORT and THREAD (RFC 5256, RFC 5957), ESORT and search contexts (RFC 5267).

imaptest groups: sort-*, sort-partial, thread*, esort, search-context-update*."""

import threading

import pytest

from tests.protocol.imapconv import deliver, session


def mail(subject: str, sender: str, to: str, date: str, size: int = 0, cc: str = "", message_id: str = "",
         references: str = "", in_reply_to: str = "") -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
    if date:
        head += f"Date: {date}\r\n"
    if cc:
        head += f"Cc: {cc}\r\n"
    if message_id:
        head += f"Message-ID: <{message_id}>\r\n"
    if references:
        head += f"References: {references}\r\n"
    if in_reply_to:
        head += f"In-Reply-To: {in_reply_to}\r\n"
    return (head + "\r\n" + "x" * size + "\r\n").encode()


# Five messages whose every key puts them in a different order (ARRIVAL is delivery order).
BOX = [
    mail("Re: banana", "Zed <zed@x.org>", "Carl <carl@y.org>", "Mon, 4 Mar 2024 10:00:00 +0000", 300,
         cc="mia@z.org"),
    mail("apple", "\"Ann\" <bob@x.org>", "al@y.org", "Mon, 4 Mar 2024 09:00:00 -0300", 100, cc="Nils <nils@z.org>"),
    mail("[list] Cherry", "ed@x.org", "Bea <zoe@y.org>", "Sun, 3 Mar 2024 23:00:00 +0000", 500),
    mail("Fwd: Apple (fwd)", "Yvonne <amy@x.org>", "dan@y.org", "", 200, cc="ann@z.org"),
    mail("Érable", "mo@x.org", "=?utf-8?q?=C3=89mile?= <bo@y.org>", "Tue, 5 Mar 2024 08:00:00 +0000", 400),
]


@pytest.fixture
def sorted_box(server):
    conv = session(server)
    for raw in BOX:
        deliver(server, "alice@example.org", raw)
    conv.transact("OK", "SELECT INBOX")
    return conv


def sort(conv, command: str) -> list[int]:
    (line,) = [l for l in conv.transact("OK", command) if l.startswith(b"* SORT")]
    return [int(n) for n in line.split()[2:]]


# Expected orders, by sequence number. Message 4 has no Date: its INTERNALDATE (the
# delivery, now) is its sent date, so it sorts last by DATE.
ORDERS = {
    "ARRIVAL": [1, 2, 3, 4, 5],
    "SIZE": [2, 4, 1, 5, 3],
    "DATE": [3, 1, 2, 5, 4],  # 2 is 12:00 UTC
    "SUBJECT": [2, 4, 1, 3, 5],  # apple = apple (ties by number), banana, cherry, érable
    "FROM": [4, 2, 3, 5, 1],  # amy bob ed mo zed
    "TO": [2, 5, 1, 4, 3],  # al bo carl dan zoe
    "CC": [3, 5, 4, 1, 2],  # empty ones first, then ann mia nils
    "DISPLAYFROM": [2, 3, 5, 4, 1],  # Ann ed@x.org mo@x.org Yvonne Zed
    "DISPLAYTO": [2, 3, 1, 4, 5],  # al@y.org Bea Carl dan@y.org Émile
}


TIED_REVERSED = {"SUBJECT": [5, 3, 1, 2, 4], "CC": [2, 1, 4, 3, 5]}


@pytest.mark.parametrize("key", sorted(ORDERS))
def test_every_sort_key_and_its_reverse(sorted_box, key):
    conv = sorted_box
    assert sort(conv, f"SORT ({key}) UTF-8 ALL") == ORDERS[key]
    reverse = sort(conv, f"SORT (REVERSE {key}) US-ASCII ALL")
    uid_order = sort(conv, f"UID SORT (REVERSE {key}) UTF-8 ALL")
    assert uid_order == reverse  # UIDs are 1..5 here
    # ties stay in sequence order even when reversed (RFC 5256 §3)
    assert reverse == TIED_REVERSED.get(key, ORDERS[key][::-1])


def test_several_keys_criteria_and_sequence_numbers(server, sorted_box):
    conv = sorted_box
    # SUBJECT first, then the later DATE first among equal subjects (1 and 4 share "apple")
    assert sort(conv, "SORT (SUBJECT REVERSE DATE) UTF-8 ALL") == [4, 2, 1, 3, 5]
    assert sort(conv, 'SORT (REVERSE SIZE) UTF-8 NOT CC "z.org"') == [3, 5]
    assert sort(conv, "SORT (SIZE) UTF-8 SUBJECT nothing-like-this") == []
    assert sort(conv, 'SORT (ARRIVAL) UTF-8 (OR 1 5) SUBJECT "É"') == [5]
    # after an expunge the same order comes as the new sequence numbers
    conv.transact("OK", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    conv.transact("OK", "EXPUNGE")
    assert sort(conv, "SORT (SIZE) UTF-8 ALL") == [3, 1, 4, 2]
    assert sort(conv, "UID SORT (SIZE) UTF-8 ALL") == [4, 1, 5, 3]
    assert sort(conv, "UID SORT (SIZE) UTF-8 UID 4:5") == [4, 5]


def test_bad_charsets_and_bad_sort_commands(sorted_box):
    conv = sorted_box
    for command in ("SORT (SUBJECT) ISO-8859-1 ALL", "THREAD REFERENCES KOI8-R ALL", "UID SORT (DATE) x ALL"):
        conv.transact("NO", command)
        assert b"[BADCHARSET (UTF-8 US-ASCII)]" in conv.last
    for command in ("SORT (SUBJECT) ALL", "SORT () UTF-8 ALL", "SORT (COLOR) UTF-8 ALL", "SORT SUBJECT UTF-8 ALL",
                    "SORT (REVERSE) UTF-8 ALL", "SORT (SUBJECT) UTF-8", "SORT RETURN (FIRST) (SUBJECT) UTF-8 ALL",
                    "SORT RETURN (PARTIAL 1:-2) (SUBJECT) UTF-8 ALL", "THREAD SIDEWAYS UTF-8 ALL",
                    "THREAD REFERENCES UTF-8", "CANCELUPDATE", "CANCELUPDATE \"nothing\""):
        conv.transact("BAD", command)
    conv.transact("OK", "UNSELECT")
    conv.transact("NO", "SORT (SUBJECT) UTF-8 ALL")
    conv.transact("NO", "THREAD REFERENCES UTF-8 ALL")


def test_capabilities_name_sort_thread_and_contexts(server):
    conv = session(server)
    (line,) = conv.transact("OK", "CAPABILITY")
    caps = set(line.split()[2:])
    assert {b"SORT", b"SORT=DISPLAY", b"THREAD=ORDEREDSUBJECT", b"THREAD=REFERENCES", b"ESORT",
            b"CONTEXT=SEARCH", b"CONTEXT=SORT"} <= caps


def esearch(conv, command: str) -> bytes:
    (line,) = [l for l in conv.transact("OK", command) if l.startswith(b"* ESEARCH")]
    return line


def test_esort_return_options(sorted_box):
    conv = sorted_box
    # SIZE order is 2 4 1 5 3: MIN and MAX are the first and last in that order (RFC 5267 §3.1)
    line = esearch(conv, "SORT RETURN (MIN MAX COUNT ALL) (SIZE) UTF-8 ALL")
    assert line.startswith(b'* ESEARCH (TAG "t') and line.endswith(b") MIN 2 MAX 3 ALL 2,4,1,5,3 COUNT 5")
    line = esearch(conv, "UID SORT RETURN () (ARRIVAL) UTF-8 ALL")
    assert line.endswith(b") UID ALL 1:5")
    line = esearch(conv, "UID SORT RETURN (COUNT) (ARRIVAL) UTF-8 SUBJECT nothing-like-this")
    assert line.endswith(b") UID COUNT 0")
    line = esearch(conv, "UID SORT RETURN (MIN ALL) (ARRIVAL) UTF-8 SUBJECT nothing-like-this")
    assert line.endswith(b") UID")
    line = esearch(conv, "SORT RETURN (PARTIAL 2:3) (SIZE) UTF-8 ALL")
    assert line.endswith(b") PARTIAL (2:3 4,1)")
    line = esearch(conv, "SORT RETURN (PARTIAL -1:-2 COUNT) (SIZE) UTF-8 ALL")
    assert line.endswith(b") COUNT 5 PARTIAL (-1:-2 5,3)")
    line = esearch(conv, "SORT RETURN (PARTIAL 7:9) (SIZE) UTF-8 ALL")
    assert line.endswith(b") PARTIAL (7:9 NIL)")
    # the range is answered low end first, as SEARCH's is (RFC 9394 §3.1)
    line = esearch(conv, "SORT RETURN (PARTIAL 3:2) (SIZE) UTF-8 ALL")
    assert line.endswith(b") PARTIAL (2:3 4,1)")
    # clients also write RETURN after the charset: the same answer
    line = esearch(conv, "SORT (SIZE) UTF-8 RETURN (PARTIAL 3:2) ALL")
    assert line.endswith(b") PARTIAL (2:3 4,1)")
    conv.transact("BAD", "SORT (SIZE) UTF-8 RETURN (PARTIAL 1:*) ALL")


def thread_reply(conv, command: str) -> bytes:
    (line,) = [l for l in conv.transact("OK", command) if l.startswith(b"* THREAD")]
    return line


def test_thread_both_algorithms(server):
    conv = session(server)
    for raw in (
        mail("plan", "a@x.org", "b@y.org", "Mon, 4 Mar 2024 10:00:00 +0000", message_id="p1@x.org"),
        mail("Re: plan", "b@y.org", "a@x.org", "Mon, 4 Mar 2024 11:00:00 +0000", message_id="p2@x.org",
             references="<p1@x.org>"),
        mail("lunch", "c@x.org", "a@x.org", "Mon, 4 Mar 2024 09:00:00 +0000", message_id="l1@x.org"),
        mail("Re: plan", "c@x.org", "a@x.org", "Mon, 4 Mar 2024 10:30:00 +0000", message_id="p3@x.org",
             in_reply_to="<p1@x.org>"),
        mail("Re: plan", "a@x.org", "b@y.org", "Mon, 4 Mar 2024 12:00:00 +0000", message_id="p4@x.org",
             references="<p1@x.org> <p2@x.org>"),
        mail("Re: lunch", "d@x.org", "a@x.org", "Mon, 4 Mar 2024 09:30:00 +0000", message_id="l2@x.org",
             references="<not-here@x.org>"),
    ):
        deliver(server, "alice@example.org", raw)
    conv.transact("OK", "SELECT INBOX")
    # the lunch thread starts earliest; 6 answers a message that is gone, and joins by subject
    # (Dovecot 2.3 gives the same answers to these commands)
    assert thread_reply(conv, "THREAD REFERENCES UTF-8 ALL") == b"* THREAD (3 6)(1 (4)(2 5))"
    assert thread_reply(conv, "THREAD ORDEREDSUBJECT UTF-8 ALL") == b"* THREAD (3 6)(1 (4)(2)(5))"
    assert thread_reply(conv, 'THREAD REFERENCES US-ASCII NOT FROM "c@"') == b"* THREAD (6)(1 2 5)"
    conv.transact("OK", "STORE 3 +FLAGS.SILENT (\\Deleted)")
    conv.transact("OK", "EXPUNGE")
    assert thread_reply(conv, "THREAD REFERENCES UTF-8 ALL") == b"* THREAD (5)(1 (3)(2 4))"
    assert thread_reply(conv, "UID THREAD REFERENCES UTF-8 ALL") == b"* THREAD (6)(1 (4)(2 5))"
    assert thread_reply(conv, "UID THREAD REFERENCES UTF-8 SUBJECT nothing-like-this") == b"* THREAD"


def append(conv, raw: bytes) -> None:
    conv.transact("OK", b"APPEND INBOX {%d+}\r\n" % len(raw) + raw + b"\r\n")


def test_context_updates_follow_another_sessions_changes(server, sorted_box):
    watcher, other = sorted_box, session(server)
    other.transact("OK", "SELECT INBOX")
    esearch(watcher, "UID SORT RETURN (UPDATE ALL) (SIZE) UTF-8 UNSEEN")
    by_size = f"t{watcher.count}".encode()
    assert watcher.last.startswith(by_size + b" OK")
    assert esearch(watcher, "SORT RETURN (UPDATE COUNT) (ARRIVAL) UTF-8 ALL").endswith(b"COUNT 5")
    by_arrival = f"t{watcher.count}".encode()
    line = esearch(watcher, "UID SEARCH RETURN (UPDATE MIN) UNSEEN")
    assert line.endswith(b"UID MIN 1")
    unseen = f"t{watcher.count}".encode()

    # a new, small message: first by size, last by arrival; told after the EXISTS
    append(other, mail("tiny", "a@x.org", "b@y.org", "Mon, 4 Mar 2024 10:00:00 +0000"))
    lines = watcher.transact("OK", "NOOP")
    exists = lines.index(b"* 6 EXISTS")
    assert lines[exists + 2:] == [
        b'* ESEARCH (TAG "%s") UID ADDTO (1 6)' % by_size,
        b'* ESEARCH (TAG "%s") ADDTO (6 6)' % by_arrival,
        b'* ESEARCH (TAG "%s") UID ADDTO (0 6)' % unseen,
    ]
    # a flag change takes message 1 out of the UNSEEN results (order by size: 6 2 4 1 5 3)
    other.transact("OK", "UID STORE 1,3 +FLAGS.SILENT (\\Seen)")
    lines = watcher.transact("OK", "NOOP")
    assert b'* ESEARCH (TAG "%s") UID REMOVEFROM (4 1 5 3)' % by_size in lines
    assert b'* ESEARCH (TAG "%s") UID REMOVEFROM (0 1,3)' % unseen in lines
    assert not any(by_arrival in l for l in lines)
    # an expunge: REMOVEFROM goes first, with the numbers the client still has
    other.transact("OK", "UID STORE 5 +FLAGS.SILENT (\\Deleted)")
    other.transact("OK", "EXPUNGE")
    lines = watcher.transact("OK", "NOOP")
    assert lines[-4:-1] == [
        b'* ESEARCH (TAG "%s") UID REMOVEFROM (4 5)' % by_size,
        b'* ESEARCH (TAG "%s") REMOVEFROM (5 5)' % by_arrival,
        b'* ESEARCH (TAG "%s") UID REMOVEFROM (0 5)' % unseen,
    ] and lines[-1] == b"* 5 EXPUNGE"
    # no second context with a live tag (RFC 5267 §4.3); CANCELUPDATE ends one
    watcher.send(by_size + b" UID SORT RETURN (UPDATE) (SIZE) UTF-8 ALL")
    assert watcher.read_until(by_size.decode())[1].startswith(by_size + b" BAD")
    watcher.transact("OK", b'CANCELUPDATE "%s" "%s"' % (by_size, unseen))
    other.transact("OK", "UID STORE 2 +FLAGS.SILENT (\\Seen)")
    append(other, mail("another", "a@x.org", "b@y.org", ""))
    lines = watcher.transact("OK", "NOOP")
    assert [l for l in lines if l.startswith(b"* ESEARCH")] == [b'* ESEARCH (TAG "%s") ADDTO (6 6)' % by_arrival]
    # the contexts end with the selection
    watcher.transact("OK", "SELECT INBOX")
    append(other, mail("third", "a@x.org", "b@y.org", ""))
    assert not [l for l in watcher.transact("OK", "NOOP") if l.startswith(b"* ESEARCH")]


def test_updates_reach_an_idling_client_and_contexts_are_bounded(server, sorted_box):
    watcher, other = sorted_box, session(server)
    other.transact("OK", "SELECT INBOX")
    for _ in range(8):
        esearch(watcher, "UID SORT RETURN (UPDATE) (DATE) UTF-8 ALL")
    lines = watcher.transact("OK", "UID SORT RETURN (UPDATE COUNT) (DATE) UTF-8 ALL")
    assert lines[0].endswith(b"COUNT 5") and lines[1].startswith(b'* NO [NOUPDATE "t')
    watcher.send(b"idle IDLE")
    assert watcher.line().startswith(b"+")
    append(other, mail("pushed", "a@x.org", "b@y.org", "Mon, 1 Jan 2024 10:00:00 +0000"))
    seen = []
    while len([l for l in seen if l.startswith(b"* ESEARCH")]) < 8:
        seen.append(watcher.line())
    assert b"* 6 EXISTS" in seen and seen[-1].endswith(b"UID ADDTO (1 6)")
    watcher.send(b"DONE")
    watcher.read_until("idle")


def test_sort_while_another_session_changes_flags(server, sorted_box):
    watcher, other = sorted_box, session(server)
    other.transact("OK", "SELECT INBOX")
    stop = threading.Event()

    def toggle():
        flip = True
        while not stop.is_set():
            other.transact("OK", f"STORE 1:5 {'+' if flip else '-'}FLAGS.SILENT (\\Flagged)")
            flip = not flip

    flipper = threading.Thread(target=toggle)
    flipper.start()
    try:
        for _ in range(30):
            found = sort(watcher, "SORT (SIZE) UTF-8 FLAGGED")
            # every answer is a whole and ordered result of one moment: all or none, in SIZE order
            assert found in ([], ORDERS["SIZE"])
    finally:
        stop.set()
        flipper.join(10)
    other.transact("OK", "STORE 2,5 +FLAGS.SILENT (\\Flagged)")
    other.transact("OK", "STORE 1,3,4 -FLAGS.SILENT (\\Flagged)")
    assert sort(watcher, "SORT (SIZE) UTF-8 FLAGGED") == [2, 5]
    assert sort(watcher, "SORT (SIZE) UTF-8 UNFLAGGED") == [4, 1, 3]


def test_base_subjects_of_tangled_prefixes(server):
    # RFC 5256 §2.1: blobs, Re:/Fwd:/Fw: (any case), trailing (fwd) and [fwd: ...] wrappers all
    # go; a subject that is one blob keeps it; no subject sorts as empty, first (RFC 5256 §3)
    subjects = ["apple", "Cherry", "[team] FW: [ops] re: Fwd: banana (FWD)  (fwd)", "banana (b)", "Re: [Fwd: cherry]",
                "[only-a-blob]", ""]
    for number, subject in enumerate(subjects, 1):
        head = f"Subject: {subject}\r\n" if subject else ""
        deliver(server, "alice@example.org", f"From: a@x.org\r\n{head}\r\n{'x' * number}\r\n".encode())
    conv = session(server)
    conv.transact("OK", "SELECT INBOX")
    # base subjects: apple, cherry, banana, banana (b), cherry, [only-a-blob], "" (ties by
    # number); the i;unicode-casemap titlecase puts "[" after the letters
    assert sort(conv, "SORT (SUBJECT) UTF-8 ALL") == [7, 1, 3, 4, 2, 5, 6]
    assert sort(conv, "SORT (SUBJECT REVERSE SIZE) UTF-8 ALL") == [7, 1, 3, 4, 5, 2, 6]


def test_thread_references_survive_a_reference_loop(server):
    # RFC 5256 §3 REFERENCES step 1: a link that would make a loop is not made
    for message_id, references, hour in (("a@x", "", 12), ("b@x", "<c@x> <a@x>", 10), ("c@x", "<b@x>", 11)):
        refs = f"References: {references}\r\n" if references else ""
        deliver(server, "alice@example.org",
                f"Message-ID: <{message_id}>\r\n{refs}Date: Mon, 4 Mar 2024 {hour}:00:00 +0000\r\n\r\nx\r\n".encode())
    conv = session(server)
    conv.transact("OK", "SELECT INBOX")
    assert thread_reply(conv, "THREAD REFERENCES UTF-8 ALL") == b"* THREAD (3 1 2)"
    conv.transact("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    conv.transact("OK", "EXPUNGE")
    assert thread_reply(conv, "THREAD REFERENCES UTF-8 ALL") == b"* THREAD (2 1)"


def test_orders_and_threads_kept_across_new_mail_and_expunges_match_a_fresh_look(server):
    # the server updates its sorted orders and threads in place as mail comes and goes;
    # each answer must be the one it gives when it sorts and threads from scratch
    conv, other = session(server), session(server)
    for n in range(8):
        deliver(server, "alice@example.org", mail(f"topic {n % 3}", f"u{n}@x.org", "a@y.org",
                                                  f"Mon, 4 Mar 2024 1{n}:00:00 +0000", 10 * n, message_id=f"t{n}"))
    conv.transact("OK", "SELECT INBOX")
    other.transact("OK", "SELECT INBOX")
    commands = [f"UID SORT ({key}) UTF-8 ALL" for key in ORDERS] + [
        "SORT (REVERSE DATE SUBJECT) UTF-8 ALL", "UID THREAD REFERENCES UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL"]

    def answers() -> list[bytes]:
        return [conv.transact("OK", command)[0] for command in commands]

    answers()
    arrivals = [
        mail("Re: topic 1", "r@x.org", "a@y.org", "Mon, 4 Mar 2024 20:00:00 +0000", message_id="r1", references="<t1>"),
        mail("news", "n@x.org", "a@y.org", "Sun, 3 Mar 2024 08:00:00 +0000", message_id="n1"),
        mail("topic 2", "s@x.org", "a@y.org", "Tue, 5 Mar 2024 08:00:00 +0000", message_id="s1"),
        mail("Re: news", "q@x.org", "a@y.org", "", message_id="q1", references="<n1>"),
    ]
    for step, raw in enumerate(arrivals):
        deliver(server, "alice@example.org", raw)
        if step == 2:
            other.transact("OK", "STORE 3 +FLAGS.SILENT (\\Deleted)")
            other.transact("OK", "EXPUNGE")
        conv.transact("OK", "NOOP")
        kept = answers()
        server.store.changes.forget_all()
        assert kept == answers()
    # replies hang under what they answer, "news" (the earliest) comes first, the later
    # "topic 2" joins the one left of its subject
    assert kept[-2] == b"* THREAD (10 12)((1)(4)(7))((2 9)(5)(8))((6)(11))"
