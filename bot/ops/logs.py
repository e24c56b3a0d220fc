"""Logs for operators: the context each line carries, and one JSON object per line on request.

`log_context(request_id=..., channel=...)` puts fields on every log line made inside it (a
`contextvars.ContextVar`: it follows awaits and the tasks started inside, not other threads);
`ContextFilter`, set on the handler, copies them onto each record. Code running on other threads
(the engine's workers) passes a request's fields explicitly, with `extra=`.

Text lines end with the fields in brackets; JSON lines hold them as keys:

    {"time": "2026-11-30T06:01:02.345Z", "level": "INFO", "logger": "bot.core.completions",
     "message": "completion ok on tiny: 40 characters in 0.05 s", "request_id": "5f0c2a9e81d4",
     "shard": 0, "guild": 1234, "channel": 5678, "model": "tiny"}

No prompt and no token is ever logged at INFO or above: a line says how much, never what.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]

#: The context fields a line may carry, in the order they are written.
CONTEXT_FIELDS = ("request_id", "shard", "guild", "channel", "model")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_EMPTY: Mapping[str, object] = MappingProxyType({})
_context: ContextVar[Mapping[str, object]] = ContextVar("charbot_log_context", default=_EMPTY)


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Put `fields` (None values skipped) on every line logged inside, over the outer ones."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise TypeError(f"not a log context field: {', '.join(sorted(unknown))}")
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> Mapping[str, object]:
    """The fields in force here (read-only): hand them to work done on another thread."""
    return _context.get()


def context_value(field: str) -> object | None:
    return _context.get().get(field)


def current_request_id() -> str | None:
    value = context_value("request_id")
    return None if value is None else str(value)


def new_request_id() -> str:
    """A short random id: unique enough to follow one completion through the logs."""
    return secrets.token_hex(6)


class ContextFilter(logging.Filter):
    """Copies the current log context onto a record; fields given with `extra=` win."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def record_context(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k in CONTEXT_FIELDS if (v := getattr(record, k, None)) is not None}


class TextFormatter(logging.Formatter):
    """The classic one-line format, with the context fields in brackets at the end."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = record_context(record)
        if not context:
            return line
        return f"{line} [{' '.join(f'{k}={v}' for k, v in context.items())}]"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, context fields,
    and the traceback as `exception` when there is one (newlines escaped, so still one line)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **record_context(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, fmt: LogFormat = "text", stream: TextIO | None = None) -> None:
    """The root logger writes `fmt` lines to `stream` (default stderr), context included."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler])
