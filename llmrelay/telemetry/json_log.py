"""JSON logs: one line per call on the `llmrelay.request` logger (`--json-logs`), and a
formatter that writes every llmrelay log line as one JSON object."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from .record import Record

log = logging.getLogger("llmrelay.request")


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, plus a request line's fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if fields := getattr(record, "fields", None):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class JsonLog:
    """The sink: each call's record as one log line."""

    def __init__(self) -> None:
        log.setLevel(logging.INFO)
        if not log.hasHandlers():  # embedded without the CLI's logging: still write the lines
            handler = logging.StreamHandler()
            handler.setFormatter(JsonFormatter())
            log.addHandler(handler)

    def emit(self, record: Record) -> None:
        fields = record.as_json()
        fields["latency_ms"] = round(fields.pop("latency") * 1000, 3)
        if (ttft := fields.pop("ttft")) is not None:
            fields["ttft_ms"] = round(ttft * 1000, 3)
        log.info("request", extra={"fields": fields})
