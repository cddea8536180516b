"""Bayes reads: the fast tokeniser finds what the regex finds; one read for several
classifiers gives what one read per classifier gives; nothing learned means no tokens."""

import tempfile

import pytest
from hypothesis import given, settings, strategies as st

from appliance.mda import bayes
from appliance.store import Store
from appliance.store.filters import SHARED


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcXY09_'$!-., \t\n") + ["é", "ß", "²", "中", "\u0301", "\u00a0", "\x85"]),
               max_size=60))
def test_words_are_the_regex_matches(text):
    assert bayes.words(text) == bayes._WORD.findall(text)


@pytest.fixture
def store():
    s = Store(tempfile.mkdtemp() + "/k.sqlite")
    yield s
    s.close()


def test_one_read_for_many_classifiers_equals_one_each(store):
    store.bayes_learn(1, b"\1" * 32, ["cheap", "pills", "shared"], spam=True)
    store.bayes_learn(2, b"\2" * 32, ["meeting", "shared"], spam=False)
    store.bayes_learn(2, b"\3" * 32, ["pills"], spam=True)
    words = ["cheap", "pills", "meeting", "shared", "unseen"]
    many = store.bayes_counts_many([SHARED, 1, 2, 3], lambda: words)
    for uid in (SHARED, 1, 2, 3):
        assert many[uid] == store.bayes_counts(uid, words), uid


def test_nothing_learned_reads_no_tokens(store):
    def tokens():
        raise AssertionError("tokenised although nothing was learned")
    assert store.bayes_counts_many([SHARED, 1], tokens) == {SHARED: ({}, (0, 0)), 1: ({}, (0, 0))}
