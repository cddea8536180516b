"""Deterministic test messages for the benchmarks.

Every generator builds its load from here, so Kotakpos and the peers see the same bytes.
Bodies are plain words (so SEARCH TEXT has real text to scan) with CRLF line endings and no
line starting with a dot (so SMTP dot-stuffing never changes sizes between servers).
"""

import random

DOMAIN = "bench.test"
# A word that appears in exactly one message out of NEEDLE_EVERY, for SEARCH TEXT.
NEEDLE = "zebrafinch"
NEEDLE_EVERY = 100
THREAD_LENGTH = 10  # messages per discussion in the bulk-loaded mailboxes

_WORDS = (
    "invoice meeting agenda budget report quarter office printer coffee schedule project "
    "customer delivery contract review draft summary holiday payment reminder update "
    "question answer minutes notes travel supplier order shipment account balance"
).split()


def make_message(index: int, size: int, sender: str = f"loadgen@{DOMAIN}",
                 rcpt: str = f"user@{DOMAIN}", needle: bool | None = None, subject: str | None = None,
                 references: str = "") -> bytes:
    """One RFC 5322 message of about `size` bytes (within a line), CRLF endings.

    `needle` forces the search word in or out; by default every NEEDLE_EVERY-th message has it.
    `subject` replaces the default one; `references` (msg-ids) makes it a reply.
    """
    rnd = random.Random(index)
    if needle is None:
        needle = index % NEEDLE_EVERY == 0
    if subject is None:
        subject = f"bench message {index} {rnd.choice(_WORDS)}"
    replying = f"In-Reply-To: {references.split()[-1]}\r\nReferences: {references}\r\n" if references else ""
    head = (
        f"From: Load Generator <{sender}>\r\n"
        f"To: <{rcpt}>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Mon, 02 Nov 2026 10:{index // 60 % 60:02d}:{index % 60:02d} +0000\r\n"
        f"Message-ID: {message_id(index, size)}\r\n"
        f"{replying}"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode()
    lines = []
    total = len(head)
    if needle:
        line = f"this message mentions the {NEEDLE} once\r\n".encode()
        lines.append(line)
        total += len(line)
    while total < size:
        line = (" ".join(rnd.choice(_WORDS) for _ in range(11)) + "\r\n").encode()
        lines.append(line)
        total += len(line)
    return head + b"".join(lines)


def message_id(index: int, size: int) -> str:
    return f"<bench.{index}.{size}@{DOMAIN}>"


def mailbox_messages(count: int, seed_size: int = 4096, owner: str = f"user@{DOMAIN}"):
    """The bulk-loaded mailbox: `count` messages with sizes varying around seed_size.

    `owner` goes into the To header, so every user's mailbox holds its own bytes (no server
    gets to share one copy between users where a real office would not). The messages
    come in discussions of THREAD_LENGTH, each reply referring to the first and the one
    before (as mail clients write References), so that THREAD has threads to build.
    """
    def size_of(i: int) -> int:
        return seed_size // 2 + (i * 7919) % seed_size  # 2 KiB .. 6 KiB, spread evenly

    for i in range(count):
        first = i - i % THREAD_LENGTH
        sender = f"sender{i * 37 % 97}@{DOMAIN}"  # SORT (FROM) has something to sort
        if i == first:
            yield i, make_message(i, size_of(i), sender=sender, rcpt=owner)
            continue
        chain = [first] + ([i - 1] if i - 1 != first else [])
        references = " ".join(message_id(j, size_of(j)) for j in chain)
        subject = f"Re: bench message {first} {random.Random(first).choice(_WORDS)}"
        yield i, make_message(i, size_of(i), sender=sender, rcpt=owner, subject=subject, references=references)
