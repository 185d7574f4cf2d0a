"""In-process receivers for telemetry e2e tests: an OTLP/HTTP trace collector and a webhook
target, each a small HTTP server on a thread, plus a Prometheus scrape parser."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.threaded_http import serving


class Receiver:
    """What a receiver got. `fail_first` answers that many POSTs with 503 (and drops them)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.lock = threading.Lock()
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self.fail_first = fail_first
        self.refused = 0
        self.url = ""


@contextmanager
def receiving(fail_first: int = 0, reply: bytes = b"{}") -> Iterator[Receiver]:
    received = Receiver(fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with received.lock:
                refuse = received.refused < received.fail_first
                if refuse:
                    received.refused += 1
                else:
                    received.bodies.append(body)
                    received.paths.append(self.path)
            self.send_response(503 if refuse else 200)
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        received.url = url
        yield received


OTLP_REPLY = ExportTraceServiceResponse().SerializeToString()


def spans(received: Receiver) -> list[dict[str, Any]]:
    """Every span an OTLP/HTTP receiver got: ids as hex, attributes as plain values."""
    out = []
    with received.lock:
        bodies = list(received.bodies)
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in s.attributes}
                    out.append({
                        "name": s.name, "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                        "parent": s.parent_span_id.hex(), "kind": s.kind, "attributes": attrs,
                        "error": s.status.code == 2,
                    })  # fmt: skip
    return out


def posted_json(received: Receiver) -> list[Any]:
    with received.lock:
        return [json.loads(b) for b in received.bodies]


Samples = list[tuple[str, dict[str, str], float]]


def scrape(root: str) -> Samples:
    with urllib.request.urlopen(root + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == w for k, w in labels.items()))
