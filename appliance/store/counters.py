"""Daily counters (filter verdicts, deliveries) that outlive a restart, for "today" views."""

from __future__ import annotations


class CountersMixin:
    def add_daily_counts(self, counts: dict[tuple[str, str], int]) -> None:
        """Add ``{(day, name): n}`` to the stored counters (day as YYYY-MM-DD)."""
        rows = [(day, name, n) for (day, name), n in counts.items() if n]

        def job(tx):
            tx.executemany("INSERT INTO daily_counts(day, name, count) VALUES (?,?,?)"
                           " ON CONFLICT(day, name) DO UPDATE SET count = count + excluded.count", rows)

        if rows:
            self.db.write(job)

    def daily_counts(self, day: str) -> dict[str, int]:
        with self.db.reader() as conn:
            return {r["name"]: r["count"] for r in conn.execute("SELECT name, count FROM daily_counts WHERE day = ?",
                                                                 (day,))}
