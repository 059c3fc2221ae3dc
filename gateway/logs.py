"""Logging: one JSON object a line (``GATEWAY_LOG_FORMAT=json``, the default) or one readable line (``text``).

:func:`configure_logging` sends every record of the process (the gateway's, uvicorn's, the libraries') through one
handler on stderr with one of the formatters here. A record written while a request runs carries its
``requestId`` (from :func:`gateway.record.current_record`).

**Access log.** Logger ``gateway.access``, one line per HTTP request and per WebSocket connection when it ends
(:func:`log_access`, called by :class:`~gateway.middleware.GatewayMiddleware`), at level info: ``ts`` (ISO 8601,
UTC), ``level``, ``logger``, ``msg``, ``requestId``, ``face``, ``operation``, ``method``, ``path`` (never the query
string), ``status``, ``code``, ``sub`` (the verified caller's subject; null when anonymous or refused),
``durationMs``, ``engineCalls``; ``replayed`` for an idempotent replay; ``closeCode`` and ``operations`` for a
WebSocket. uvicorn's own access log is off (:data:`UVICORN_OPTIONS`), and so are its per-WebSocket info lines.

**No secrets.** Nothing here logs headers, bodies, query strings, GraphQL variables or ``connection_init``
payloads. As a second line of defence both formatters blank what looks like a credential in any message or
traceback: ``Bearer <token>``, JWTs, and the password of a URL (``redis://user:password@host``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any, Final

from .config import Settings
from .record import RequestRecord, current_record

ACCESS_LOGGER = "gateway.access"
access_log = logging.getLogger(ACCESS_LOGGER)

#: For ``uvicorn.Config(**UVICORN_OPTIONS)``: uvicorn keeps the logging set up here and writes no access log.
UVICORN_OPTIONS: Final[dict[str, Any]] = {"log_config": None, "access_log": False}

_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]+@")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: The attributes every LogRecord has: anything else a call passes with ``extra=`` is a field of the JSON line.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "requestId",
    "color_message",  # uvicorn's message with terminal colours
}


def redact(text: str) -> str:
    """``text`` with bearer tokens, JWTs and URL passwords blanked."""
    if not text:
        return text
    text = _BEARER.sub(r"\1 [redacted]", text)
    text = _JWT.sub("[redacted-jwt]", text)
    return _URL_PASSWORD.sub(r"\1:[redacted]@", text)


def _one_line(text: str) -> str:
    """Control characters escaped (``\\n``, ``\\x1b``): a path or a message from a client cannot start a line of
    its own in the text format, nor drive the terminal."""
    return _CONTROL.sub(lambda match: repr(match[0])[1:-1], text)


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RequestContext(logging.Filter):
    """Gives each record the ``requestId`` of the request it was written in (None outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "requestId"):
            current = current_record()
            record.requestId = None if current is None else current.request_id
        return True


class UvicornNoise(logging.Filter):
    """Drops uvicorn's per-WebSocket info lines ('"WebSocket /graphql" [accepted]', 'connection open'): the
    access log has one line per connection, and uvicorn's would show the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("uvicorn") or record.levelno > logging.INFO:
            return True
        message = str(record.msg)
        return not ('"WebSocket ' in message or message in ("connection open", "connection closed"))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts``, ``level``, ``logger``, ``msg``, ``requestId`` (when in a request), the
    record's ``extra`` fields, and ``exc`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        request_id = getattr(record, "requestId", None)
        if request_id is not None:
            line["requestId"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """One line for people: ``2026-01-02T03:04:05.678Z INFO  gateway.hub: message [rid]``; an access line reads
    ``… gateway.access: GET /api/v1/user-tasks 200 OK list_user_tasks 4.1ms engine=1 sub=alice [rid]``."""

    def format(self, record: logging.LogRecord) -> str:
        head = f"{_timestamp(record.created)} {record.levelname:<7} {record.name}: {redact(record.getMessage())}"
        request_id = getattr(record, "requestId", None)
        if record.name == ACCESS_LOGGER:
            fields = record.__dict__
            head += (
                f" {fields.get('code')} {fields.get('operation') or '-'} {fields.get('durationMs')}ms"
                f" engine={fields.get('engineCalls')} sub={fields.get('sub') or '-'}"
            )
            if fields.get("replayed"):
                head += " replayed"
        if request_id is not None:
            head += f" [{request_id}]"
        head = _one_line(head)  # (a traceback below keeps its lines)
        if record.exc_info:
            head += "\n" + redact(self.formatException(record.exc_info))
        if record.stack_info:
            head += "\n" + redact(self.formatStack(record.stack_info))
        return head


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Every log record of the process through one handler (stderr) in ``settings.log_format``, at
    ``settings.log_level``; returns the handler. Replaces whatever handlers the root logger had."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(RequestContext())
    handler.addFilter(UvicornNoise())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per engine call is noise (engineCalls says it)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler


def log_access(record: RequestRecord) -> None:
    """The access log line of a finished request (or WebSocket connection)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    fields = record.as_fields()
    message = f"{record.method} {record.path} {record.status}"
    access_log.info(message, extra=fields)
