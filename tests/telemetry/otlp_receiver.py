"""An OTLP/HTTP trace receiver on a real 127.0.0.1 port, for the tracing tests.

It accepts ``POST /v1/traces`` (protobuf ``ExportTraceServiceRequest``, gzip or not),
keeps every span it is sent, decoded into plain values, and the headers and raw bodies
of the export requests (to check what was, and was not, sent).
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

SERVER = "SPAN_KIND_SERVER"
CLIENT = "SPAN_KIND_CLIENT"
ERROR = Status.STATUS_CODE_ERROR
UNSET = Status.STATUS_CODE_UNSET


@dataclass
class ReceivedSpan:
    """One exported span, decoded."""

    name: str
    kind: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str  # "" for a root span
    attributes: dict[str, Any]
    status: int
    status_message: str
    resource: dict[str, Any]
    scope: str


@dataclass
class Export:
    """One export request as received."""

    headers: dict[str, str]
    body: bytes
    spans: list[ReceivedSpan] = field(default_factory=list)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    items: list[KeyValue] = list(pairs)
    return {pair.key: _value(pair.value) for pair in items}


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one ``ExportTraceServiceRequest``."""
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        kind=Span.SpanKind.Name(span.kind),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes=_attributes(span.attributes),
                        status=span.status.code,
                        status_message=span.status.message,
                        resource=resource,
                        scope=scope_spans.scope.name,
                    )
                )
    return spans


class OtlpReceiver:
    """``start()`` it, point the gateway at ``url``, read ``spans`` after a flush."""

    def __init__(self, decode: bool = True) -> None:
        self._decode = decode  # False: only count the requests (for timing the sender)
        self._lock = threading.Lock()
        self._exports: list[Export] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL (``/v1/traces`` is the path spans are posted to)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def exports(self) -> list[Export]:
        """Every export request received, in order."""
        with self._lock:
            return list(self._exports)

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Every span received, in export order."""
        return [span for export in self.exports for span in export.spans]

    def clear(self) -> None:
        """Forget what was received."""
        with self._lock:
            self._exports = []

    def start(self) -> OtlpReceiver:
        """Serve on a free port in a background thread."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                headers = {name.lower(): value for name, value in self.headers.items()}
                export = Export(headers, body, decode(body) if receiver._decode else [])
                with receiver._lock:
                    receiver._exports.append(export)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None
