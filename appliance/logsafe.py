"""One inert line per log record: peer-chosen text cannot forge lines or drive a terminal.

Stream names, AMF strings, chat, relay NOTICEs and peer errors reach log messages as
arguments. :class:`SafeLogFilter`, installed on the handlers at start-up, renders each
record's message and passes it through :func:`appliance.api.schema.safe_text` (the same
sanitiser the CLI and the TUI use), so ESC sequences, CR/LF and bidi controls arrive in the
journal as visible escapes (docs/threat-model.md §logs). Tracebacks are untouched: they are
formatted from ``exc_info``, not from the message.
"""

from __future__ import annotations

import logging

from appliance.api.schema import safe_text

__all__ = ["LOG_LINE_LIMIT", "SafeLogFilter", "install"]

LOG_LINE_LIMIT = 4000
"""Characters of one log message after sanitising."""


class SafeLogFilter(logging.Filter):
    """Replaces ``record.msg``/``record.args`` by the sanitised, formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = f"{record.msg!r} {record.args!r}"
        record.msg = safe_text(message, LOG_LINE_LIMIT)
        record.args = None
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of ``logger`` (the root logger by default), once."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, SafeLogFilter) for f in handler.filters):
            handler.addFilter(SafeLogFilter())
