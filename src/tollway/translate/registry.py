"""Which translator carries a client endpoint to a provider, composing through the OpenAI
chat format when there is no direct pairing (Anthropic client -> Gemini, Responses
client -> Anthropic, say)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from tollway.dialects.endpoints import Endpoint
from tollway.errors import TollwayError
from tollway.translate.base import Body, StreamTranslator, Translator


@dataclass(frozen=True)
class Path:
    """How to reach an upstream endpoint from a client endpoint."""

    upstream_endpoint: Endpoint
    build: Callable[[Body], Translator]


class _ChainStream(StreamTranslator):
    def __init__(self, outer: StreamTranslator, inner: StreamTranslator) -> None:
        self._outer, self._inner = outer, inner

    def feed(self, event: bytes) -> list[bytes]:
        return [out for mid in self._inner.feed(event) for out in self._outer.feed(mid)]

    def finish(self) -> list[bytes]:
        events = [out for mid in self._inner.finish() for out in self._outer.feed(mid)]
        return events + self._outer.finish()

    def failure(self, error: TollwayError) -> list[bytes] | None:
        return self._outer.failure(error)


class _Chain(Translator):
    """client -> OpenAI chat -> upstream, built from two direct pairings."""

    client_endpoint = Endpoint.MESSAGES  # or RESPONSES: whatever ``outer`` takes
    upstream_endpoint = Endpoint.CHAT_COMPLETIONS

    def __init__(self, client_body: Body, outer: type[Translator], inner: type[Translator]) -> None:
        super().__init__(client_body)
        self._outer = outer(client_body)
        self._inner_cls = inner
        self._inner: Translator | None = None

    def _second(self, upstream_model: str) -> Translator:
        if self._inner is None:
            self._inner = self._inner_cls(self._outer.request(upstream_model))
        return self._inner

    def request(self, upstream_model: str) -> Body:
        return self._second(upstream_model).request(upstream_model)

    def response(self, upstream_body: Body) -> Body:
        assert self._inner is not None, "request() builds the chain first"
        return self._outer.response(self._inner.response(upstream_body))

    def stream(self) -> StreamTranslator:
        assert self._inner is not None, "request() builds the chain first"
        return _ChainStream(self._outer.stream(), self._inner.stream())


class Translations:
    """Every translator installed (plugins, ``tollway.translators``), by the pair of
    endpoints each one joins."""

    def __init__(self, translators: Iterable[type[Translator]]) -> None:
        self._direct: dict[tuple[Endpoint, Endpoint], type[Translator]] = {
            (cls.client_endpoint, cls.upstream_endpoint): cls for cls in translators
        }

    def path(self, client: Endpoint, upstream: frozenset[Endpoint]) -> Path | None:
        """A way from the client's endpoint to one the provider serves, or None."""
        direct = self._direct
        for target in sorted(upstream):
            one = direct.get((client, target))
            if one is not None:
                return Path(target, one)
        outer = direct.get((client, Endpoint.CHAT_COMPLETIONS))
        if outer is not None:
            for target in sorted(upstream):
                inner = direct.get((Endpoint.CHAT_COMPLETIONS, target))
                if inner is not None:
                    return Path(target, partial(_Chain, outer=outer, inner=inner))
        return None
