"""Logging set-up: readable lines or one JSON object per line, with secrets redacted from everything written."""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

#: Extra fields a log call may carry (`log.info(..., extra={"task_id": …})`), copied into JSON lines.
CONTEXT_FIELDS = ("task_id", "slack_user", "request_id", "surface")
#: Token shapes redacted even when they are not the configured ones (a pasted wrong token, say).
_TOKEN_SHAPES = re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}|wbk_[A-Za-z0-9_]{6,}|whsec_\w{6,})")
#: The longest message (and context field) a log line carries; a 200 kB header cannot write 200 kB of log.
MAX_MESSAGE = 4096
#: The longest traceback a log entry carries.
MAX_TRACEBACK = 16_384
#: Characters that could end a log line or fool a terminal: C0 and C1 controls, DEL, Unicode line breaks.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: What starts each continuation line of a traceback in text logs, so that no line of it looks like a record.
TRACEBACK_INDENT = "  | "


def clip(value: object, limit: int = 200) -> str:
    """Text cut to `limit` characters with a marker saying how much was left out (None becomes "")."""
    text = "" if value is None else value if isinstance(value, str) else safe_repr(value, limit)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more chars]"


def safe_repr(value: Any, limit: int = 200) -> str:
    """repr() of any value, cut to `limit` characters; never raises (a value too deep to print is named)."""
    try:
        text = repr(value[: limit + 1] if isinstance(value, (str, bytes)) else value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__} that cannot be printed>"
    return text if len(text) <= limit else f"{text[:limit]}…"


def neutralize(text: str, limit: int = MAX_MESSAGE) -> str:
    """Escape line breaks and other control characters and cut to `limit`: the text stays on one line."""
    escaped = _escape_controls(text[:limit])
    if len(text) <= limit and len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}…[cut: {len(text)} chars in all]"


def _escape_controls(text: str) -> str:
    """Control characters written as Python escapes (a newline becomes backslash-n)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _message(record: logging.LogRecord) -> str:
    """The record's message, even when its arguments do not fit its format string."""
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed log call must still log something
        return f"{record.msg!r} % {safe_repr(record.args, 500)}"


#: Shorter configured "secrets" are not redacted: they would blank out ordinary words.
_MIN_SECRET = 6


class _Redactor:
    """Replaces configured secrets and token shapes with [redacted]."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _TOKEN_SHAPES.sub("[redacted]", text)


class RedactingFormatter(logging.Formatter):
    """A text formatter that keeps each record on one line (tracebacks indented), bounded and redacted."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._redact = _Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """Format a guarded copy of the record (other handlers see the original), then redact."""
        safe = copy.copy(record)
        safe.msg, safe.args = neutralize(self._redact(_message(record))), None
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                setattr(safe, name, neutralize(self._redact(clip(value, 200)), 200))
        return self._redact(super().format(safe))

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        """The traceback, bounded, with every line indented so that none can pass for a record."""
        text = clip(self._redact(super().formatException(ei)), MAX_TRACEBACK)
        return _indent(text)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        """A stack dump, bounded and indented like a traceback."""
        return _indent(clip(stack_info, MAX_TRACEBACK))


def _indent(text: str) -> str:
    """Each line of `text` starts with TRACEBACK_INDENT, and no line holds a control character."""
    return "\n".join(TRACEBACK_INDENT + _escape_controls(line) for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields and any exception, redacted."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._redact = _Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": neutralize(self._redact(_message(record))),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = neutralize(self._redact(clip(value, 200)), 200)
        if record.exc_info:
            entry["exception"] = clip(self._redact(self.formatException(record.exc_info)), MAX_TRACEBACK)
        return self._redact(json.dumps(entry, ensure_ascii=True, default=str))


def setup_logging(level: str = "INFO", secrets: Iterable[str] = (), fmt: str = "text") -> None:
    """Send logs to stderr, redacted, as text or JSON lines; quiet the chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(secrets))
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "slack_sdk", "slack_bolt", "waitress", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
