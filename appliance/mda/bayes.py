"""A Bayesian spam classifier per user over a shared base (Graham's tokens, Robinson's combining).

Tokens are the words of the subject and the text parts, and the sender's domain. Each
token's spam probability is smoothed toward 0.5 by how rarely it was seen (Robinson's
f(w)); the ``INTERESTING`` tokens furthest from 0.5 are combined in log space. Counts
come from the store: the user's own plus the shared base that every user's training
also feeds, so a new user starts with what the office learned.
"""

from __future__ import annotations

import math
import re

from appliance import mime

INTERESTING = 15  # tokens that decide
MAX_TOKENS = 3000  # distinct tokens taken from one message
STRENGTH = 1.0  # Robinson's s: how much an unseen token's 0.5 weighs
_WORD = re.compile(r"[^\W\d_][\w'$!-]{2,23}", re.UNICODE)  # words of 3 to 24 characters


def words(text: str) -> list[str]:
    """``_WORD.findall(text)``, faster: no match crosses white space, and a white-space
    separated piece of 3 to 24 letters is exactly one match, so only the other pieces
    (digits, punctuation, long words) go through the regex."""
    out: list[str] = []
    append = out.append
    for piece in text.split():
        if 3 <= len(piece) <= 24 and piece.isalpha():
            append(piece)
        else:
            out += _WORD.findall(piece)
    return out


def tokens(info: "mime.MessageInfo", body_text: str, author: "mime.Author") -> list[str]:
    """The distinct tokens of a message, from its analysis, its body text (mime.body_text)
    and its author (mime.author: the domains DMARC checks and every reader shows)."""
    found: dict[str, None] = {}
    for word in _WORD.findall(info.subject.lower()):
        found[f"subject:{word}"] = None
    for domain in author.domains:
        found[f"from:{domain}"] = None
    for word in dict.fromkeys(words(body_text[:200_000].lower())):  # distinct, in order
        if len(found) >= MAX_TOKENS:
            break
        found[word] = None
    return list(found)


def probability(counts: dict[str, tuple[int, int]], totals: tuple[int, int], words: list[str]) -> float | None:
    """The spam probability of a message with these tokens, or None before any training."""
    spam_total, ham_total = totals
    if spam_total + ham_total == 0:
        return None
    spam_total, ham_total = max(spam_total, 1), max(ham_total, 1)
    scored = []
    for word in words:
        spam, ham = counts.get(word, (0, 0))
        n = spam + ham
        if n == 0:
            continue
        spam_rate, ham_rate = min(spam / spam_total, 1.0), min(ham / ham_total, 1.0)
        p = spam_rate / (spam_rate + ham_rate)
        f = (STRENGTH * 0.5 + n * p) / (STRENGTH + n)
        scored.append(min(max(f, 0.01), 0.99))
    if not scored:
        return 0.5
    scored.sort(key=lambda p: abs(p - 0.5), reverse=True)
    top = scored[:INTERESTING]
    log_spam = sum(math.log(p) for p in top)
    log_ham = sum(math.log(1 - p) for p in top)
    return 1 / (1 + math.exp(log_ham - log_spam))


def score(p: float | None) -> tuple[str, float]:
    """(test name, spam score) for a Bayes probability, SpamAssassin-style bands."""
    if p is None:
        return "", 0.0
    for limit, name, points in ((0.99, "BAYES_99", 5.0), (0.9, "BAYES_90", 3.0), (0.8, "BAYES_80", 2.0),
                                (0.6, "BAYES_60", 1.0)):
        if p >= limit:
            return name, points
    if p <= 0.01:
        return "BAYES_00", -2.0
    if p <= 0.1:
        return "BAYES_05", -1.0
    return "BAYES_50", 0.0
