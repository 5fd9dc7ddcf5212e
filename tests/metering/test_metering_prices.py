"""Our price arithmetic (``PriceBook`` + ``ModelPrice.cost``) equals genai-prices'."""

from __future__ import annotations

from decimal import Decimal

import genai_prices
import pytest

from tollway.config import Price
from tollway.metering.prices import ModelPrice, PriceBook
from tollway.metering.usage import Usage
from tollway.settings import Dialect

MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4.1-nano"),
    ("openai", "o3-mini"),
    ("openai", "gpt-3.5-turbo-instruct"),
    ("openai", "text-embedding-3-small"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("anthropic", "claude-opus-4-1"),
    ("anthropic", "claude-haiku-4-5"),
]

# (input incl. cache, output, cache reads, cache writes)
USAGES = [
    (0, 0, 0, 0),
    (1, 0, 0, 0),
    (17, 6, 0, 0),
    (1000, 100, 400, 0),
    (1000, 100, 0, 300),
    (1000, 100, 200, 300),
    (123_457, 9_876, 65_432, 1_234),
    (200_000, 10, 0, 0),  # at the tier threshold: still the base rate
    (200_001, 10, 0, 0),  # past it: every token at the tier rate
    (250_000, 1_000, 100_000, 50_000),
    (1_000_000, 64_000, 0, 0),
]


def ours(provider: str, model: str, usage: tuple[int, int, int, int]) -> Decimal:
    price = PriceBook().lookup(model, Dialect(provider), None, None)
    assert price is not None, model
    total, output, read, write = usage
    return price.cost(
        Usage(
            input_tokens=total,
            output_tokens=output,
            cache_read_tokens=read,
            cache_write_tokens=write,
        )
    )


def theirs(provider: str, model: str, usage: tuple[int, int, int, int]) -> Decimal:
    total, output, read, write = usage
    found = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=total,
            output_tokens=output,
            cache_read_tokens=read,
            cache_write_tokens=write,
        ),
        model,
        provider_id=provider,
    )
    return found.total_price


@pytest.mark.parametrize(("provider", "model"), MODELS, ids=[m for _, m in MODELS])
@pytest.mark.parametrize("usage", USAGES, ids=lambda u: "-".join(map(str, u)))
def test_cost_equals_genai_prices(
    provider: str, model: str, usage: tuple[int, int, int, int]
) -> None:
    assert ours(provider, model, usage) == theirs(provider, model, usage)


def test_tiered_price_above_200k_input_tokens() -> None:
    """claude-sonnet-4-5: $3/$15 per MTok up to 200k input tokens, $6/$22.50 above, with
    cache reads $0.30 -> $0.60 and writes $3.75 -> $7.50; the threshold counts every
    input token, cached or not."""
    below = (150_000, 2_000, 40_000, 10_000)
    above = (210_000, 2_000, 40_000, 10_000)
    assert (
        ours("anthropic", "claude-sonnet-4-5", below)
        == (Decimal(100_000) * 3 + 40_000 * Decimal("0.3") + 10_000 * Decimal("3.75") + 2_000 * 15)
        / 1_000_000
    )
    assert (
        ours("anthropic", "claude-sonnet-4-5", above)
        == (
            Decimal(160_000) * 6
            + 40_000 * Decimal("0.6")
            + 10_000 * Decimal("7.5")
            + 2_000 * Decimal("22.5")
        )
        / 1_000_000
    )
    assert ours("anthropic", "claude-sonnet-4-5", above) == theirs(
        "anthropic", "claude-sonnet-4-5", above
    )


def test_override_wins_and_missing_cache_rates_fall_back_to_input() -> None:
    book = PriceBook()
    override = Price(input_mtok=Decimal("2"), output_mtok=Decimal("8"))
    price = book.lookup("gpt-4o-mini", Dialect.OPENAI, None, override)
    assert isinstance(price, ModelPrice)
    usage = Usage(input_tokens=1000, output_tokens=10, cache_read_tokens=300)
    assert price.cost(usage) == (Decimal(1000) * 2 + 10 * 8) / 1_000_000
    zero = book.lookup("self-hosted", Dialect.OPENAI, None, Price(input_mtok=0, output_mtok=0))
    assert zero is not None
    assert zero.cost(Usage(input_tokens=10**6, output_tokens=10**6)) == 0


def test_lookup_by_unknown_host_falls_back_to_the_model_name() -> None:
    book = PriceBook()
    direct = book.lookup("gpt-4o-mini", Dialect.OPENAI, None, None)
    proxied = book.lookup("gpt-4o-mini", Dialect.OPENAI, "http://127.0.0.1:9/v1", None)
    assert direct is not None and proxied is not None
    usage = Usage(input_tokens=5000, output_tokens=500, cache_read_tokens=1000)
    assert proxied.cost(usage) == direct.cost(usage)
    assert book.lookup("no-such-model-anywhere-xyz", Dialect.OPENAI, None, None) is None


@pytest.mark.parametrize(
    "model", ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5", "claude-3-5-haiku-latest"]
)
@pytest.mark.parametrize(
    ("total", "writes", "hour_writes"),
    [(10_000, 4_000, 3_000), (10_000, 4_000, 4_000), (250_000, 60_000, 20_000)],
)
def test_one_hour_cache_writes_equal_genai_prices(
    model: str, total: int, writes: int, hour_writes: int
) -> None:
    price = PriceBook().lookup(model, Dialect.ANTHROPIC, None, None)
    assert price is not None
    ours = price.cost(
        Usage(
            input_tokens=total,
            output_tokens=500,
            cache_read_tokens=1_000,
            cache_write_tokens=writes,
            cache_write_1h_tokens=hour_writes,
        )
    )
    theirs = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=total,
            output_tokens=500,
            cache_read_tokens=1_000,
            cache_write_tokens=writes,
            cache_write_5m_tokens=writes - hour_writes,
            cache_write_1h_tokens=hour_writes,
        ),
        model,
        provider_id="anthropic",
    ).total_price
    assert ours == theirs
