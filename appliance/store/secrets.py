"""Secrets the server makes for itself (DKIM keys, the SRS secret), kept in the store.

They live beside the mail, not as files in the data folder, so ``kotakpos backup`` and
``restore`` carry them: a restored server keeps signing with the keys its DNS publishes.
"""

from __future__ import annotations

from typing import Callable


class SecretsMixin:
    def secret(self, name: str) -> bytes | None:
        with self.db.reader() as conn:
            row = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return row["value"] if row else None

    def ensure_secret(self, name: str, make: Callable[[], bytes]) -> bytes:
        """The secret called ``name``, made with ``make()`` and stored durably the first time.

        Two callers racing on a new name both get the one value that was stored.
        """
        found = self.secret(name)
        if found is not None:
            return found
        value = make()

        def job(tx):
            tx.execute("INSERT OR IGNORE INTO secrets(name, value) VALUES (?, ?)", (name, value))
            return tx.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()["value"]

        return self.db.write(job)
