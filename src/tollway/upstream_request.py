"""The request sent upstream for one route: the client's payload (as the stages left it),
translated when the provider speaks another dialect, with the upstream model id, usage
reporting on, an output limit where one is needed, and the key's own credential."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from tollway.bounds import printable
from tollway.dialects.endpoints import Endpoint, RequestInfo
from tollway.dialects.validate import Payload
from tollway.errors import BadRequest
from tollway.metering.meter import Meter
from tollway.providers.base import UpstreamCall
from tollway.routing.router import Route
from tollway.settings import Dialect
from tollway.translate.base import Translator
from tollway.translate.openai_chat import wants_usage
from tollway.translate.registry import Translations

if TYPE_CHECKING:
    from tollway.call import CallRecord

# Client headers a provider may forward upstream; everything else stays here.
_FORWARDED = ("anthropic-version", "anthropic-beta")
_MAX_FORWARDED_HEADER = 1024
# OpenAI-dialect streams that report usage only when asked (stream_options.include_usage).
_USAGE_ON_REQUEST = frozenset({Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS})
# Where each endpoint takes its output limit (chat: the provider says, see Provider).
_OUTPUT_LIMIT = {
    Endpoint.CHAT_COMPLETIONS: "max_completion_tokens",
    Endpoint.COMPLETIONS: "max_tokens",
    Endpoint.RESPONSES: "max_output_tokens",
    Endpoint.MESSAGES: "max_tokens",
}


def forwarded(headers: dict[str, str]) -> dict[str, str]:
    """The client headers a provider may pass on, bounded (a beta list is short)."""
    out = {}
    for name in _FORWARDED:
        value = headers.get(name)
        if value is not None:
            if len(value) > _MAX_FORWARDED_HEADER or not printable(value):
                raise BadRequest(
                    f"Header '{name}' must be at most {_MAX_FORWARDED_HEADER} printable "
                    "characters.",
                    param=name,
                )
            out[name] = value
    return out


class UpstreamRequests:
    """Builds the upstream request of each attempt."""

    def __init__(self, translations: Translations, meter: Meter) -> None:
        self._translations = translations
        self._meter = meter

    def build(
        self, route: Route, record: CallRecord, info: RequestInfo, headers: dict[str, str]
    ) -> tuple[UpstreamCall, Translator | None]:
        """The upstream request for ``route``: translated when the provider speaks another
        dialect, with the upstream model id, usage reporting on, the project's key."""
        provider = route.provider
        endpoint = record.endpoint
        payload: Payload = self._with_output_limit(record.payload or {}, record, route, info)
        translator: Translator | None = None
        target = endpoint
        record.strip_usage = False
        if endpoint is Endpoint.COUNT_TOKENS or provider.supports(endpoint):
            body_payload = {**payload, "model": route.upstream_model}
            openai_stream = info.stream and provider.dialect is Dialect.OPENAI
            if openai_stream and endpoint in _USAGE_ON_REQUEST and not wants_usage(payload):
                options = payload.get("stream_options") or {}
                body_payload["stream_options"] = {**options, "include_usage": True}
                record.strip_usage = True
        else:
            path = self._translations.path(endpoint, provider.served)
            if path is None:
                raise BadRequest(
                    f"The model '{route.model}' is served by provider '{provider.name}' "
                    f"({provider.dialect.value} API), which cannot serve the "
                    f"{endpoint.dialect.value} endpoint {endpoint.value}.",
                    param="model",
                )
            try:
                translator = path.build(payload)
                body_payload = translator.request(route.upstream_model)
            except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
                # A field the translation reads has a shape the source API would refuse.
                raise BadRequest(
                    f"The request cannot be translated for provider '{provider.name}' "
                    f"({provider.dialect.value} API): a field has an unexpected shape "
                    f"({type(exc).__name__})."
                ) from None
            target = path.upstream_endpoint
        key = record.principal.key if record.principal else None
        # Always the parsed payload, serialized again (never the client's bytes): what was
        # checked and authorized is exactly what goes upstream, even if the client sent
        # a key twice (``{"model": "a", "model": "b"}``: JSON parsers disagree on which
        # one wins).
        try:
            body = orjson.dumps(body_payload)
        except orjson.JSONEncodeError:
            raise BadRequest("Request body is nested too deeply.") from None
        call = UpstreamCall(
            endpoint=target,
            body=body,
            stream=info.stream,
            client_headers=forwarded(headers),
            credential=key.credentials.get(provider.name) if key else None,
            model=route.upstream_model,
        )
        return call, translator

    def _with_output_limit(
        self, payload: Payload, record: CallRecord, route: Route, info: RequestInfo
    ) -> Payload:
        """A call that set no output limit gets the model's configured one
        (``max_output_tokens``) and, when budgeted, the one its hold assumed: otherwise
        the upstream's own default (up to a model's maximum) could outspend it."""
        if info.max_output_tokens:
            return payload
        admission = record.admission
        budgeted = admission is not None and admission.reservation is not None
        if not budgeted and route.config.max_output_tokens is None:
            return payload
        field = _OUTPUT_LIMIT.get(record.endpoint)
        if field is None:
            return payload
        if record.endpoint is Endpoint.CHAT_COMPLETIONS:
            field = route.provider.chat_output_limit_field
        record.output_limit_added = True
        return {**payload, field: self._meter.assumed_output_limit(route)}
