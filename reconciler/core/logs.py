"""Structured logging: ``key=value`` text or one JSON object per line.

Callers log an event name plus fields (``log.info("change applied", extra={"fields": {...}})``
or the ``event()`` helper). Secrets never reach a log line because nothing passes them in;
as a second line of defence, registered secret strings are masked in every rendered line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
MASK = "(sensitive)"


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it would appear in a log line (ESL/DB/xml_curl passwords)."""
    if value and len(value) >= 4:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _format_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_format_value(record.getMessage())}",
        ]
        for key, value in getattr(record, "fields", {}).items():
            parts.append(f"{key}={_format_value(value)}")
        if record.exc_info:
            parts.append(f"error={_format_value(self.formatException(record.exc_info))}")
        return redact(" ".join(parts))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, ensure_ascii=False, default=str))


def current_format() -> str:
    """The format ``configure`` chose ("text" when it was not called): child processes
    (the xml_curl workers) log the same way."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_pbx", False) and isinstance(handler.formatter, JsonFormatter):
            return "json"
    return "text"


def configure(log_format: str = "text", level: int = logging.INFO) -> None:
    """Route all ``logging`` output to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_pbx", False):
            root.removeHandler(old)
    handler._pbx = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # logs every command it runs


def event(logger: logging.Logger, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``message`` with structured ``fields``."""
    logger.log(level, message, extra={"fields": fields})
