"""Log records carry the process, and the match and user they concern; LOG_FORMAT=json writes one JSON object a line.

A socket's consumer sets the match and user for its task (gameserver/ws.py), a match's tick loop the match
(games/engine/runner.py); asyncio tasks copy the context they are created in, so whatever they log is tagged.
`ContextFilter` (on the console handler, settings.LOGGING) puts them on every record as `match_id`, `user_id`,
`process` and, for the plain format, `context` (" match=12 user=3", or empty).
"""

from __future__ import annotations

import contextvars
import logging
from datetime import UTC, datetime

import orjson

from gameserver.metrics_process import PROCESS

_match_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("log_match_id", default=None)
_user_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("log_user_id", default=None)


def log_context(*, match_id: int | None, user_id: int | None) -> None:
    """Tag what the current task (and the tasks it creates from now on) logs."""
    _match_id.set(match_id)
    _user_id.set(user_id)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        match_id, user_id = _match_id.get(), _user_id.get()
        record.match_id = match_id
        record.user_id = user_id
        record.process_name = PROCESS
        parts = []
        if match_id is not None:
            parts.append(f"match={match_id}")
        if user_id is not None:
            parts.append(f"user={user_id}")
        record.context = (" " + " ".join(parts)) if parts else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, process (host:pid), match_id, user_id, message,
    and exception (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": getattr(record, "process_name", PROCESS),
            "match_id": getattr(record, "match_id", None),
            "user_id": getattr(record, "user_id", None),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()
