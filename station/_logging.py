"""Structured logs: one JSON object per line (``logging.json: true``).

Fields: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg`` (arguments applied), ``exc`` when
there is a traceback, and ``cluster_id`` / ``session_id`` when known: from ``extra=`` on the
call (``log.info("...", extra={"cluster_id": cid})``) or, failing that, from the context
variables that ``log_context(cluster_id=..., session_id=...)`` sets for a block of code.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

__all__ = ["CONTEXT_FIELDS", "JsonFormatter", "log_context"]

CONTEXT_FIELDS = ("cluster_id", "session_id")
_CONTEXT: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"loaxa_log_{name}", default=None) for name in CONTEXT_FIELDS
}


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Attach ``cluster_id`` / ``session_id`` to every record logged inside the block."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context field(s): {', '.join(sorted(unknown))}")
    tokens = [(_CONTEXT[name], _CONTEXT[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None) or _CONTEXT[name].get()
            if value is not None:
                data[name] = str(value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)
