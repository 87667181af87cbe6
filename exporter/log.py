"""Logging: StructuredLogger for library users, the stderr sinks, and their one-time set-up."""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger as _logger

LEVELS = {
    "debug": "DEBUG", "info": "INFO", "warn": "WARNING", "warning": "WARNING",
    "error": "ERROR", "fatal": "CRITICAL", "critical": "CRITICAL",
}


class StructuredLogger:
    """A logger carrying a context (service, request id ...) into every record.

    loguru underneath; the library never configures loguru's sinks on its own: the CLI
    does, and an engine calls `setup_logging()` once.
    """

    def __init__(self, **context: Any) -> None:
        self._context = dict(context)
        self._log = _logger.bind(**context)

    def get_context(self) -> dict[str, Any]:
        """A copy of this logger's context."""
        return dict(self._context)

    def child(self, **context: Any) -> StructuredLogger:
        """A logger with this one's context plus `context`."""
        return StructuredLogger(**{**self._context, **context})

    def _emit(self, level: str, msg: str, context: dict | None, metadata: dict | None,
              error: BaseException | None = None) -> None:
        extra: dict[str, Any] = {}
        if context:
            extra["context"] = context
        if metadata:
            extra["metadata"] = metadata
        if error is not None:
            extra["error"] = {"type": type(error).__name__, "message": str(error)}
        log = self._log.bind(**extra).opt(depth=2, exception=error if error is not None else None)
        log.log(level, msg)

    def debug(self, msg: str, context: dict | None = None, metadata: dict | None = None) -> None:
        """Log at debug level."""
        self._emit("DEBUG", msg, context, metadata)

    def info(self, msg: str, context: dict | None = None, metadata: dict | None = None) -> None:
        """Log at info level."""
        self._emit("INFO", msg, context, metadata)

    def warn(self, msg: str, context: dict | None = None, metadata: dict | None = None) -> None:
        """Log at warning level."""
        self._emit("WARNING", msg, context, metadata)

    warning = warn

    def error(self, msg: str, error: BaseException | None = None, context: dict | None = None) -> None:
        """Log at error level, with the exception when given."""
        self._emit("ERROR", msg, context, None, error)

    def fatal(self, msg: str, error: BaseException | None = None, context: dict | None = None) -> None:
        """Log at critical level, with the exception when given."""
        self._emit("CRITICAL", msg, context, None, error)

    def time(self, name: str, fn: Callable[[], Awaitable[Any]] | None = None):
        """Time `name`: `await log.time(name, fn)`, `async with log.time(name)`, or `@log.time(name)`."""
        if fn is not None:
            return self._time_call(name, fn)
        return _Timer(self, name)

    async def _time_call(self, name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        async with _Timer(self, name):
            return await fn()

    def _timed(self, name: str, duration_ms: float, ok: bool) -> None:
        level = "DEBUG" if ok else "WARNING"
        self._log.bind(operation=name, duration_ms=round(duration_ms, 3), success=ok).log(
            level, "{} took {:.1f} ms", name, duration_ms
        )


class _Timer:
    """Async context manager and decorator behind StructuredLogger.time."""

    def __init__(self, log: StructuredLogger, name: str) -> None:
        self._log, self._name = log, name
        self._start = 0.0

    async def __aenter__(self) -> _Timer:
        self._start = time.perf_counter()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self._log._timed(self._name, (time.perf_counter() - self._start) * 1000.0, exc is None)

    def __call__(self, fn: Callable) -> Callable:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def wrapper(*args, **kwargs):
                async with _Timer(self._log, self._name):
                    return await fn(*args, **kwargs)
            return wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args, **kwargs):
            start = time.perf_counter()
            ok = False
            try:
                result = fn(*args, **kwargs)
                ok = True
                return result
            finally:
                self._log._timed(self._name, (time.perf_counter() - start) * 1000.0, ok)
        return sync_wrapper


# C0 controls but tab, DEL and C1 (U+0085 NEL among them), the Unicode line and paragraph
# separators, and lone surrogates: whatever could end or garble a line of the text log.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """`text` with line breaks, other control characters and lone surrogates escaped
    (`\\n`, `\\x85`, `\\u2028`), so that it stays on one log line."""
    return _UNSAFE.sub(_escape, text)


def _json_sink(message) -> None:
    record = message.record
    out = {
        "ts": record["time"].isoformat(),
        "level": record["level"].name.lower(),
        "msg": record["message"],
        "logger": record["name"],
    }
    for key, value in record["extra"].items():
        if key != "_printable":
            out.setdefault(key, value)
    if record["exception"] is not None:
        exc = record["exception"]
        out["exception"] = f"{exc.type.__name__ if exc.type else ''}: {exc.value}"
    sys.stderr.write(json.dumps(out, default=str) + "\n")


TEXT_LINE = "<green>{time:YYYY-MM-DDTHH:mm:ss.SSSZ}</green> <level>{level: <7}</level> {extra[_printable]}"


def text_format(record) -> str:
    """loguru format of the text log, one line a record: time, level, the message escaped by
    printable(), then the bound fields as JSON (escaped the same way, braces doubled)."""
    extra = {k: v for k, v in record["extra"].items() if k != "_printable"}
    record["extra"]["_printable"] = printable(record["message"])
    line = TEXT_LINE
    if extra:
        fields = printable(json.dumps(extra, default=str, ensure_ascii=False))
        line += " " + fields.replace("{", "{{").replace("}", "}}").replace("<", r"\<")
    return line + "\n{exception}"


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Set loguru's sinks for the process: stderr, text or JSON lines.

    Exceptions show their traceback without local variable values (`diagnose=False`).
    """
    _logger.remove()
    lvl = LEVELS[level.lower()]
    if fmt == "json":
        _logger.add(_json_sink, level=lvl, backtrace=False, diagnose=False)
    else:
        _logger.add(
            sys.stderr, level=lvl, backtrace=False, diagnose=False, colorize=sys.stderr.isatty(),
            format=text_format,
        )


def setup_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Install the sidecar's stderr sink in an engine: `LOG_LEVEL` and `LOG_FORMAT` when not given.

    Replaces loguru's default sink (which shows only the message): context and metadata
    appear, as JSON fields or after the text line, and tracebacks carry no local values.
    A bad level or format raises ValueError naming it; the sinks are then unchanged.
    """
    from .settings import load_settings

    names = ("LOG_LEVEL", "LOG_FORMAT")
    settings = load_settings({k: v for k, v in os.environ.items() if k in names},
                             log_level=level, log_format=fmt)
    configure_logging(settings.log_level, settings.log_format)
