"""The server's recent log lines, kept in memory for the admin API's live log view.

A ``logging.Handler`` on the ``kotakpos`` logger: each record is formatted once, kept in a
bounded ring (the newest ``capacity`` lines) and handed to a callback that publishes it as
an admin event. Log lines never carry secrets (the protocols redact before logging), so
the ring may be shown as is.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Callable


class LogRing(logging.Handler):
    def __init__(self, publish: Callable[[dict], None], capacity: int = 2000):
        super().__init__()
        self._publish = publish
        self._lines: collections.deque[dict] = collections.deque(maxlen=capacity)
        self._ring_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                # The exception's type and message only: a full traceback would swamp the view.
                text += f" ({record.exc_info[0].__name__}: {record.exc_info[1]})"
            line = {"type": "log", "time": record.created, "level": record.levelname,
                    "name": record.name, "message": text}
            with self._ring_lock:
                self._lines.append(line)
            self._publish(line)
        except Exception:
            self.handleError(record)

    def tail(self, limit: int) -> list[dict]:
        """The newest ``limit`` lines, oldest first."""
        with self._ring_lock:
            lines = list(self._lines)
        return lines[-limit:] if limit > 0 else []
