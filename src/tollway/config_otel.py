"""The standard OpenTelemetry variables, as defaults for the ``telemetry`` section
(https://opentelemetry.io/docs/specs/otel/protocol/exporter/#configuration-options).

Pure functions of the environment mapping ``settings.py`` passes in (it stays the only
reader of the process environment); a problem is a ``ValueError`` naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote


def telemetry_from_environ(section: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The file's ``telemetry`` section, with what it leaves unset taken from the standard
    OpenTelemetry variables."""
    out = dict(section)
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        out["enabled"] = False
    traces = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if "otlp_endpoint" not in out and "otlp_traces_endpoint" not in out and (traces or base):
        for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = environ.get(variable, "").strip()
            if protocol and protocol != "http/protobuf":
                raise ValueError(
                    f"{variable}: Tollway exports traces over http/protobuf only, not "
                    f"{protocol[:40]!r}; point the endpoint at the collector's OTLP/HTTP "
                    "port (4318)"
                )
            if protocol:
                break
        out["otlp_traces_endpoint" if traces else "otlp_endpoint"] = traces or base
    resource = otel_pairs(environ, "OTEL_RESOURCE_ATTRIBUTES")
    if isinstance(out.get("resource_attributes", {}), dict):
        out["resource_attributes"] = {**resource, **out.get("resource_attributes", {})}
    # OTEL_SERVICE_NAME wins over a service.name among the resource attributes.
    name = environ.get("OTEL_SERVICE_NAME") or resource.get("service.name")
    if name and "service_name" not in out:
        out["service_name"] = name
    if isinstance(out.get("headers", {}), dict):
        headers = {
            **otel_pairs(environ, "OTEL_EXPORTER_OTLP_HEADERS"),
            **otel_pairs(environ, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
        }
        out["headers"] = {**headers, **out.get("headers", {})}
    return {key: value for key, value in out.items() if value != {}}


def otel_pairs(environ: Mapping[str, str], variable: str) -> dict[str, str]:
    """``key1=value1,key2=value2`` (percent-encoded), the OpenTelemetry list format."""
    pairs: dict[str, str] = {}
    for item in environ.get(variable, "").split(","):
        if not item.strip():
            continue
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            # The value is not shown: it may be a collector's token.
            raise ValueError(f"{variable}: give key=value pairs separated by commas")
        pairs[unquote(key.strip())] = unquote(value.strip())
    return pairs
