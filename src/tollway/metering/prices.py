"""What a call costs, in Decimal USD.

Prices come from genai-prices (a maintained database that ships its data; nothing is
downloaded at run time) unless the model's config sets ``price:``. Looking a model up in
the database is slow (tens of microseconds to milliseconds), so each (provider, model)
is resolved once; the arithmetic is ours and is checked against the library in tests.
Tiered prices follow the industry "cliff" rule: past a tier's input threshold, all
tokens of that kind pay the tier's rate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tollway.config import Price
from tollway.metering.usage import Usage

MILLION = Decimal(1_000_000)
# A Decimal, a genai_prices TieredPrices (``.base`` and ``.tiers``), or None.
PriceValue = Any


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens for one model."""

    input_mtok: PriceValue
    output_mtok: PriceValue
    cache_read_mtok: PriceValue = None
    cache_write_mtok: PriceValue = None
    source: str = "config"
    cache_write_1h_mtok: PriceValue = None

    def cost(self, usage: Usage) -> Decimal:
        """The exact cost of ``usage``."""
        total_input = usage.input_tokens
        uncached = max(total_input - usage.cache_read_tokens - usage.cache_write_tokens, 0)
        input_rate = _rate(self.input_mtok, total_input)
        read_rate = _rate(self.cache_read_mtok, total_input, input_rate)
        write_rate = _rate(self.cache_write_mtok, total_input, input_rate)
        write_1h_rate = _rate(self.cache_write_1h_mtok, total_input, write_rate)
        output_rate = _rate(self.output_mtok, total_input)
        hour_writes = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
        micro = (
            uncached * input_rate
            + usage.cache_read_tokens * read_rate
            + (usage.cache_write_tokens - hour_writes) * write_rate
            + hour_writes * write_1h_rate
            + usage.output_tokens * output_rate
        )
        return micro / MILLION


def _rate(value: PriceValue, total_input: int, fallback: Decimal = Decimal(0)) -> Decimal:
    if value is None:
        return fallback
    if isinstance(value, Decimal):
        return value
    rate: Decimal = value.base
    for tier in value.tiers:
        if total_input > tier.start:
            rate = tier.price
    return rate


class PriceBook:
    """Resolves and caches the price of each (provider, upstream model)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, str | None], ModelPrice | None] = {}

    def lookup(
        self,
        model: str,
        provider_id: str | None,
        base_url: str | None,
        override: Price | None,
    ) -> ModelPrice | None:
        """The model's price, or None when nobody knows it."""
        if override is not None:
            return ModelPrice(
                override.input_mtok,
                override.output_mtok,
                override.cache_read_mtok,
                override.cache_write_mtok,
            )
        key = (provider_id or "", model, base_url)
        if key not in self._cache:
            self._cache[key] = _from_database(model, provider_id, base_url)
        return self._cache[key]


def _from_database(model: str, provider_id: str | None, base_url: str | None) -> ModelPrice | None:
    # Loaded on first use: the package brings an HTTP client and tracing for its own
    # updater, which a gateway with configured prices never needs.
    import genai_prices

    # A custom base_url is matched by its host first (Groq, Together, ...); then the
    # provider type's own prices; then the model name alone. Self-hosted models should
    # set ``price:`` explicitly (zero is a price).
    attempts: list[tuple[str | None, str | None]] = [(provider_id, None), (None, None)]
    if base_url is not None:
        # A proxy or compatible server for a known provider type is priced as that
        # provider when its host is not in the database.
        attempts.insert(0, (None, base_url))
    for provider_id, api_url in attempts:
        empty = genai_prices.Usage(input_tokens=0, output_tokens=0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if api_url is not None:
                    found = genai_prices.calc_price(empty, model, provider_api_url=api_url)
                else:
                    found = genai_prices.calc_price(empty, model, provider_id=provider_id)
        except LookupError:
            continue
        price = found.model_price
        return ModelPrice(
            price.input_mtok,
            price.output_mtok,
            price.cache_read_mtok,
            price.cache_write_mtok,
            source=f"genai-prices:{found.provider.id}/{found.model.id}",
            cache_write_1h_mtok=price.cache_write_1h_mtok,
        )
    return None
