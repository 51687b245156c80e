"""The bot's recent log lines, kept in memory (secrets redacted) for the demo page's panel."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable

from bot.ops.logs import RedactingFormatter

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class LogRing(logging.Handler):
    """A logging handler that keeps the last `size` formatted lines and counts every line it saw."""

    def __init__(self, secrets: Iterable[str], *, size: int = 200, level: int = logging.INFO) -> None:
        super().__init__(level)
        formatter = RedactingFormatter(_FORMAT, secrets)
        formatter.datefmt = "%H:%M:%S"
        self.setFormatter(formatter)
        self._lines: deque[str] = deque(maxlen=size)
        self._guard = threading.Lock()
        self._total = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Format the record (redacted) and keep it."""
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging must never break the code that logs
            self.handleError(record)
            return
        with self._guard:
            self._lines.append(line)
            self._total += 1

    @property
    def total(self) -> int:
        """How many lines were kept since the start, including those already dropped."""
        with self._guard:
            return self._total

    def lines(self, last: int | None = None) -> list[str]:
        """The kept lines, oldest first (only the `last` ones when given)."""
        with self._guard:
            lines = list(self._lines)
        return lines[-last:] if last else lines
