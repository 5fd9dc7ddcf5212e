"""The APIs clients speak: request shapes, and errors rendered in each dialect."""

from tollway.dialects.endpoints import ENDPOINTS_BY_PATH, Endpoint, RequestInfo
from tollway.dialects.render import render_error, render_stream_error

__all__ = ["ENDPOINTS_BY_PATH", "Endpoint", "RequestInfo", "render_error", "render_stream_error"]
