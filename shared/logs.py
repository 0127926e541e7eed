"""Structured logs: every line a process writes is one JSON object (structlog renders it).

`{"time", "level", "service", "logger", "message", "correlation_id", ...extra fields}`, for
our own loggers (`logging.getLogger("twinaid.…")`, `log.warning("…", extra={"reason": …})`),
structlog's, and the libraries' (uvicorn's server messages and errors, aiokafka, asyncpg).
Uvicorn's plain-text access log is silenced: the API's EdgeMiddleware (shared/web.py) writes
one access line per request on "twinaid.access", with the request's correlation id.

`configure` runs when a process builds its app or worker, which for uvicorn is after it set up
its own logging (the factory is loaded after `--log-config`/LOGGING_CONFIG applied), so the
usual command lines (`uvicorn --factory services.<name>.app:create_app ...`) need no flag.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from types import TracebackType

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

# what a record carries that is no field of ours: structlog's bookkeeping, uvicorn's coloured
# copy of its message
_DROPPED = frozenset({"_record", "_from_structlog", "color_message", "positional_args"})
_FIRST = ("time", "level", "service", "logger", "message", "correlation_id")


def _shape(service: str) -> Processor:
    """The fields in one order, whoever logged: ours first, then the record's extra fields."""

    def shape(_: WrappedLogger, method: str, event: EventDict) -> EventDict:
        record: logging.LogRecord | None = event.get("_record")
        created = record.created if record is not None else datetime.now(UTC).timestamp()
        entry: EventDict = {
            "time": datetime.fromtimestamp(created, UTC).isoformat(),
            "level": (record.levelname if record is not None else method).upper(),
            "service": service,
            "logger": record.name if record is not None else event.get("logger"),
            "message": event.pop("event", ""),
            "correlation_id": event.pop("correlation_id", None) or correlation_id.get(),
        }
        for key, value in event.items():
            if key not in _DROPPED and key not in entry:
                entry[key] = value
        return entry

    return shape


class _Ours(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure` installs (and replaces when called again)."""


def configure(service: str, level: str) -> None:
    """JSON lines on stderr for every logger of this process, at `level` and above."""
    formatter = structlog.stdlib.ProcessorFormatter(
        # records from the standard library's loggers: their `extra={...}` fields kept
        foreign_pre_chain=[structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.processors.format_exc_info,  # "exception": the traceback as text
            _shape(service),
            structlog.processors.JSONRenderer(default=str),
        ],
    )
    handler = _Ours(sys.stderr)
    handler.setFormatter(formatter)
    handler.setLevel(level)
    root = logging.getLogger()
    # handlers of others (a test's log capture) stay; ours is replaced
    root.handlers = [h for h in root.handlers if not isinstance(h, _Ours)] + [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    # what would reach stderr as plain text otherwise: warnings, an exception ending the process
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    # uvicorn's own handlers write plain text: its messages go to ours instead, and its access
    # log is off (no handler: uvicorn then skips it), as EdgeMiddleware writes a richer one
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("twinaid").critical("the process ends: %r", exc, exc_info=(kind, exc, tb))
