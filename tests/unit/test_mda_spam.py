"""Spam scoring: heuristics, authentication results, Bayes per user over a shared base."""

import tempfile

import pytest

from appliance import mime
from appliance.mda import bayes
from appliance.mda.spam import SpamFilter, heuristics
from appliance.store import Store
from tests.mda_helpers import USER, Counting, incoming, plain, wire

SPAMMY = "Cheap watches and pills, discount pharmacy, buy replica watches today"
HAMMY = "Meeting notes from Tuesday: budget review, project schedule, office move"


@pytest.fixture
def store():
    s = Store(tempfile.mkdtemp() + "/k.sqlite")
    yield s
    s.close()


def run(store, raw: bytes, notes: dict | None = None, **config):
    ctx = Counting(store, **config)
    msg = incoming(raw)
    msg.notes.update(notes or {})
    check = SpamFilter(ctx).check(msg)
    body = check.check_body()
    rcpt = check.check_rcpt(USER) if body.reject is None else None
    check.close()
    return body, rcpt, ctx.stats


def header(verdict, name):
    return dict(verdict.add_headers)[name]


def test_a_plain_message_scores_low_and_stays_in_inbox(store):
    body, rcpt, _ = run(store, wire(plain(body=HAMMY)))
    assert body.reject is None and rcpt.folders == ()
    assert header(rcpt, "X-Spam-Status").startswith("No, score=")


def test_heuristics_name_what_they_found():
    raw = b"Subject: YOU HAVE WON THE LOTTERY!!!\r\n\r\nClaim your prize: wire transfer now.\r\n"
    names = {n for n, _ in heuristics(incoming(raw))}
    assert {"MISSING_FROM", "MISSING_DATE", "MISSING_MID", "SUBJ_ALL_CAPS", "SUBJ_EXCLAIM", "SPAM_PHRASES"} <= names


def test_failed_authentication_counts_and_dmarc_reject_policy_refuses(store):
    notes = {"auth": {"spf": "fail", "dkim": ["fail"], "dmarc": "fail", "dmarc_policy": "reject"}}
    body, _, stats = run(store, wire(plain(body=HAMMY)), notes)
    assert body.reject == (550, "5.7.1", "Message refused as spam") and "DMARC_REJECT" in body.reason
    assert stats == {"mda.spam": 1}


def test_junk_threshold_files_into_junk(store):
    notes = {"auth": {"spf": "fail", "dkim": ["none"], "dmarc": "fail", "dmarc_policy": "quarantine"}}
    body, rcpt, _ = run(store, wire(plain(body=HAMMY)), notes)
    assert rcpt.folders == ("Junk",) and header(rcpt, "X-Spam-Status").startswith("Yes, score=7.0")
    assert header(rcpt, "X-Spam-Score") == "7.0"


def tokens(text: str) -> list[str]:
    raw = wire(plain(body=text, subject=text[:30]))
    info = mime.analyze(raw)
    return bayes.tokens(info, mime.body_text(raw, info), mime.author(mime.header_fields(raw[:info.root.body_start])))


@pytest.mark.parametrize("author, domains", [
    (b"Bob <bob@Remote.TEST>", ["remote.test"]),
    (b"bob@remote.test (ceo@bank.test)", ["remote.test"]),  # a comment is no sender
    (b"undisclosed-recipients:;", []),
    (b"bob@remote.test, ceo@bank.test", ["remote.test", "bank.test"]),
])
def test_the_sender_token_is_the_domain_dmarc_checks(author, domains):
    raw = b"From: " + author + b"\r\nSubject: hi\r\n\r\nHello.\r\n"
    info = mime.analyze(raw)
    found = bayes.tokens(info, mime.body_text(raw, info), mime.author(mime.header_fields(raw[:info.root.body_start])))
    assert [t for t in found if t.startswith("from:")] == [f"from:{d}" for d in domains]


def test_bayes_learns_per_user_over_the_shared_base(store):
    for n in range(3):
        store.bayes_learn(USER.id, bytes([n]) * 32, tokens(SPAMMY), spam=True)
        store.bayes_learn(USER.id, bytes([n + 10]) * 32, tokens(HAMMY), spam=False)
    words = tokens(SPAMMY)
    assert bayes.probability(*store.bayes_counts(USER.id, words), words) > 0.99
    words = tokens(HAMMY)
    assert bayes.probability(*store.bayes_counts(USER.id, words), words) < 0.01
    # another user starts from the shared base, which the first user's training fed
    words = tokens(SPAMMY)
    assert bayes.probability(*store.bayes_counts(99, words), words) > 0.99


def test_learning_the_other_way_unlearns_first(store):
    words = tokens(SPAMMY)
    assert store.bayes_learn(USER.id, b"k" * 32, words, spam=True)
    assert not store.bayes_learn(USER.id, b"k" * 32, words, spam=True)  # twice counts once
    assert store.bayes_learn(USER.id, b"k" * 32, words, spam=False)
    counts, totals = store.bayes_counts(USER.id, words)
    assert totals == (0, 2)  # user and shared base: one ham each, no spam left
    assert all(spam == 0 for spam, _ in counts.values())


def test_no_training_no_opinion():
    assert bayes.probability({}, (0, 0), ["anything"]) is None
