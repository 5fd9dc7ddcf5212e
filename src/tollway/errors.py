"""The one error tree. Every failure a client can see is one of these.

    TollwayError                     status  meaning
    ├── BadRequest                   400     malformed JSON, wrong types, missing fields
    │   └── ModelNotFound            404     no configured model by that name
    ├── Unauthorized                 401     missing, unknown, expired or revoked key
    ├── PaymentRequired              402     budget exhausted
    ├── Forbidden                    403     model or route not allowed for this key
    ├── RequestTimeout               408     the client did not send its body in time
    ├── PayloadTooLarge              413     body over the configured limit
    ├── UnsupportedMediaType         415     a compressed (Content-Encoding) body
    ├── HeadersTooLarge              431     request headers over the limit
    ├── RateLimited                  429     a limit was hit; carries Retry-After
    ├── InternalError                500     a bug: logged with its traceback
    ├── ServiceUnavailable           503     the gateway's own database or Redis is down;
    │                                        carries Retry-After
    ├── UpstreamError                502     the provider failed or answered garbage
    │   ├── UpstreamUnavailable      503     the provider is overloaded or unreachable
    │   │   └── UpstreamBusy         503     no pooled connection free in time (the
    │   │                                    gateway is busy; the provider is not sick)
    │   └── UpstreamTimeout          504     the provider did not answer in time
    └── UpstreamRejected             4xx     the provider refused the request itself

Rendering into a dialect happens in ``dialects/`` and nowhere else. Messages are written
for the client: no stack traces, no secrets.
"""

from __future__ import annotations


class TollwayError(Exception):
    """Base of every client-visible error."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(TollwayError):
    """The request itself is wrong."""

    status = 400
    code = "invalid_request"


class ModelNotFound(BadRequest):
    """The requested model is not configured."""

    status = 404
    code = "model_not_found"


class Unauthorized(TollwayError):
    """No valid credential was presented."""

    status = 401
    code = "invalid_api_key"


class PaymentRequired(TollwayError):
    """The key or project has spent its budget."""

    status = 402
    code = "budget_exceeded"


class Forbidden(TollwayError):
    """The credential is valid but may not do this."""

    status = 403
    code = "forbidden"


class NotFound(TollwayError):
    """No such route."""

    status = 404
    code = "not_found"


class MethodNotAllowed(TollwayError):
    """The route exists but not with this method."""

    status = 405
    code = "method_not_allowed"


class RequestTimeout(TollwayError):
    """The client sent its request too slowly."""

    status = 408
    code = "request_timeout"


class PayloadTooLarge(TollwayError):
    """The body is larger than the configured limit."""

    status = 413
    code = "request_too_large"


class UnsupportedMediaType(TollwayError):
    """The body is encoded in a way the gateway does not read."""

    status = 415
    code = "unsupported_media_type"


class HeadersTooLarge(TollwayError):
    """The request's headers are larger than the limit."""

    status = 431
    code = "headers_too_large"


class RateLimited(TollwayError):
    """A rate limit was hit."""

    status = 429
    code = "rate_limit_exceeded"


class InternalError(TollwayError):
    """Something the gateway did not expect; the details are in its log."""

    status = 500
    code = "internal_error"


class ServiceUnavailable(TollwayError):
    """A store the gateway depends on (database, Redis) is unreachable; retry shortly."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 2) -> None:
        super().__init__(message, code=code, headers={"retry-after": str(retry_after)})


class UpstreamError(TollwayError):
    """The provider failed; the call may succeed elsewhere or later."""

    status = 502
    code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """The provider is overloaded or unreachable."""

    status = 503
    code = "upstream_unavailable"


class UpstreamBusy(UpstreamUnavailable):
    """Every pooled connection to the provider stayed busy for the pool timeout."""

    code = "upstream_pool_exhausted"


class UpstreamTimeout(UpstreamError):
    """The provider did not answer in time."""

    status = 504
    code = "upstream_timeout"


class UpstreamRejected(TollwayError):
    """The provider refused the request as invalid; its status is kept."""

    code = "upstream_rejected"

    def __init__(self, message: str, *, status: int, headers: dict[str, str] | None = None):
        super().__init__(message, headers=headers)
        self.status = status
