"""The counter's tables load once, whichever thread asks first, and off the event loop for
async callers; counts match the encoder's own on any text."""

from __future__ import annotations

import asyncio
import base64
import random
import threading
from pathlib import Path

import bpe_openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.metering.estimates import Estimator
from tollway.metering.tokens import TokenCounter

REFERENCE = bpe_openai.get_encoding("o200k_base")  # the encoder itself, whole
COUNTER = TokenCounter()

TEXTS = [
    Path(__file__).resolve().parents[2].joinpath("README.md").read_text(encoding="utf-8"),
    Path(__file__).read_text(encoding="utf-8"),
    "東京の天気は晴れです。😀🎉 Ünïcödé façade — naïve café",
    "    \n\n\t  \r\n   trailing   ",
    "a" * 5000,
    base64.b64encode(random.Random(3).randbytes(3000)).decode(),
    "I've, you'll, they'd; WE'RE HE'S 1234567 3.14159 <|endoftext|> <|endofprompt|>",
    "def f(x):\n    return {'k': [1, 2, 3]}  # ok\n",
]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_counts_equal_the_reference_encoder(text: str) -> None:
    assert COUNTER.count_text(text) == len(REFERENCE.encode_ordinary(text))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_counts_equal_the_reference_on_any_text(text: str) -> None:
    expected = len(REFERENCE.encode_ordinary(text.encode("utf-8", "replace").decode()))
    assert COUNTER.count_text(text.encode("utf-8", "replace").decode()) == expected


def test_tables_load_once_whoever_asks() -> None:
    counter = TokenCounter()
    assert not counter.loaded
    threads = [threading.Thread(target=counter.load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.loaded
    first = counter._encoding
    counter.load()
    assert counter._encoding is first


async def test_an_async_count_loads_the_tables_in_a_thread() -> None:
    counter = TokenCounter()
    loaders: list[str] = []
    original = counter.load

    def load() -> None:
        loaders.append(threading.current_thread().name)
        original()

    counter.load = load  # type: ignore[method-assign]
    estimator = Estimator(counter)
    assert await estimator.text("hello there") == 2
    assert loaders and loaders[0] != threading.main_thread().name
    assert await estimator.text("again") == 1 and len(loaders) == 1
    await asyncio.sleep(0)
