"""Structured (JSON lines) logging for the live side, stdlib ``logging`` only.

Records carry their structured payload in ``extra={"fields": {...}}``; the
:class:`JsonFormatter` writes one JSON object per line::

    {"ts": "2026-01-01T00:00:00.123Z", "level": "INFO", "logger": "mm_runtime.quoter",
     "msg": "quote status", "asset": "BTC", "binding": {"bid": "margin", "ask": "none"}, ...}
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime, timezone

__all__ = ["JsonFormatter", "configure_json_logging"]


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds")
        out = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(_clean(fields))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, allow_nan=False)


def configure_json_logging(level: int = logging.INFO, stream=None, logger: str = "mm_runtime") -> logging.Handler:
    """Attach a JSON handler (stderr by default) to the ``mm_runtime`` logger."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    lg = logging.getLogger(logger)
    lg.addHandler(handler)
    lg.setLevel(level)
    return handler
