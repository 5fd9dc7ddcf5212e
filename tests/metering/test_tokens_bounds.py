"""Token counting stays bounded in time and memory, and never raises, on huge text.

bpe-openai's wrapper refuses text of 1,000,000+ characters or 200,000+ tokens; the
counter tokenizes in pieces and bounds what is past its caps by UTF-8 bytes. The unit
tests use ``TokenCounter`` itself; the last test goes through the real app.
"""

from __future__ import annotations

import base64
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bpe_openai
import httpx
import pytest

from harness import GPT, GatewayServer
from tollway.metering.tokens import TokenCounter

MB = 1_000_000
SENTENCE = "The quick brown fox jumps over the lazy dog, then counts 12 tokens.\n"
# Not a speed target (those live in `make bench`): a ceiling that only a super-linear
# tokenizer breaks (quadratic merges on 10 MB take minutes), with room for a loaded host.
SECONDS = 20.0
# Peak resident memory a 10 MB count may add (the input itself exists before measuring).
PEAK_MIB = 32.0


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    """The default counter, with its encoding loaded."""
    tokens = TokenCounter()
    tokens.count_text("warm up")
    return tokens


@pytest.fixture(scope="module")
def encoding() -> Any:
    """The tokenizer package itself, for reference counts of text it accepts."""
    return bpe_openai.get_encoding("o200k_base")


def english(size: int) -> str:
    """``size`` characters of repeated prose."""
    return (SENTENCE * (size // len(SENTENCE) + 1))[:size]


def prose_tokens(encoding: Any, copies: int) -> int:
    """Exact tokens of ``SENTENCE * copies``, extrapolated from short texts the tokenizer
    accepts whole (each copy after the first tokenizes the same way)."""
    one, two, three = (len(encoding.encode_ordinary(SENTENCE * k)) for k in (1, 2, 3))
    assert three - two == two - one
    return one + (copies - 1) * (two - one)


def random_base64(size: int) -> str:
    """``size`` characters of base64 over random bytes: no whitespace, many tokens."""
    raw = random.Random(7).randbytes(size * 3 // 4 + 3)
    return base64.b64encode(raw).decode()[:size]


def measured(count: Callable[[str], int], text: str) -> tuple[int, float, float]:
    """The count, its seconds and the peak resident memory it added (MiB)."""
    status = Path("/proc/self/status")
    clear_refs = Path("/proc/self/clear_refs")
    if not status.exists() or not clear_refs.exists():
        pytest.skip("peak memory is read from Linux /proc")

    def kib(field: str) -> int:
        match = re.search(rf"{field}:\s+(\d+)", status.read_text())
        assert match is not None
        return int(match.group(1))

    before = kib("VmRSS")
    clear_refs.write_text("5")  # resets the peak (VmHWM) to the current size
    started = time.perf_counter()
    result = count(text)
    seconds = time.perf_counter() - started
    return result, seconds, (kib("VmHWM") - before) / 1024


def test_one_megabyte_of_english_is_counted_exactly(counter: TokenCounter, encoding: Any) -> None:
    copies = MB // len(SENTENCE) + 1
    text = SENTENCE * copies
    assert len(text) >= MB  # the wrapper alone refuses this

    count, seconds, _ = measured(counter.count_text, text)

    assert count == prose_tokens(encoding, copies)
    assert seconds < SECONDS


def test_one_megabyte_of_one_character_is_counted(counter: TokenCounter) -> None:
    count, seconds, _ = measured(counter.count_text, "a" * MB)

    # o200k has an eight-"a" token; each hard cut (no whitespace) costs about one token.
    cuts = MB // 16_384
    assert MB // 8 <= count <= MB // 8 + cuts
    assert seconds < SECONDS


@pytest.mark.parametrize(
    "make",
    [english, lambda size: "a" * size, random_base64],
    ids=["english", "one-character", "base64"],
)
def test_ten_megabytes_are_bounded(counter: TokenCounter, make: Callable[[int], str]) -> None:
    text = make(10 * MB)

    count, seconds, peak = measured(counter.count_text, text)

    # Past a million tokens the rest counts as bytes: never below the tokens, never above
    # the bytes (one token per byte at most).
    assert 1_048_576 <= count <= len(text.encode())
    assert seconds < SECONDS
    assert peak < PEAK_MIB


def test_ten_megabytes_of_english_bound_the_true_count(
    counter: TokenCounter, encoding: Any
) -> None:
    copies = 10 * MB // len(SENTENCE)
    count = counter.count_text(SENTENCE * copies)

    assert count >= prose_tokens(encoding, copies)


def test_uncapped_counts_match_the_tokenizer(encoding: Any) -> None:
    uncapped = TokenCounter(tokenize_tokens=10**9, tokenize_chars=10**9)
    copies = 3 * MB // len(SENTENCE)

    assert uncapped.count_text(SENTENCE * copies) == prose_tokens(encoding, copies)
    assert uncapped.count_text("a" * 3 * MB) == pytest.approx(3 * MB // 8, abs=200)


def test_cuts_before_whitespace_are_exact(encoding: Any) -> None:
    small = TokenCounter(piece_chars=40)
    text = "Line one has words.\r\nLine  two   has\tspaces.\n\n" * 50 + "end"

    assert small.count_text(text) == len(encoding.encode_ordinary(text))


def test_hard_cuts_cost_about_one_token_each(encoding: Any) -> None:
    small = TokenCounter(piece_chars=1000)
    text = random_base64(200_000)

    exact = len(encoding.encode_ordinary(text))
    assert abs(small.count_text(text) - exact) <= 200_000 // 500


def test_special_token_text_counts_as_text(counter: TokenCounter) -> None:
    assert counter.count_text("say <|endoftext|> please") > 3


def test_lone_surrogates_are_counted(counter: TokenCounter) -> None:
    assert counter.count_text("a\ud800b") >= 3
    assert TokenCounter(tokenize_tokens=0).count_text("a\ud800b") == 5


def test_past_the_caps_text_counts_as_utf8_bytes() -> None:
    none = TokenCounter(tokenize_tokens=0)

    assert none.count_text("héllo wörld") == len("héllo wörld".encode())
    assert none.count_text("\U0001f600" * 3) == 12
    assert TokenCounter(tokenize_chars=0).count_text("plain") == 5


def test_one_request_shares_the_caps(counter: TokenCounter) -> None:
    first, second = "word " * 100, "more " * 100
    capped = TokenCounter(tokenize_tokens=10)
    payload = {
        "model": GPT,
        "messages": [
            {"role": "user", "content": first},
            {"role": "user", "content": second},
        ],
    }

    # The first message spends the allowance; the second counts as bytes.
    assert capped.count_request(payload) == counter.count_text(first) + len(second) + 6
    assert (
        counter.count_request(payload) == counter.count_text(first) + counter.count_text(second) + 6
    )


def test_nesting_deeper_than_the_serializer_is_counted(counter: TokenCounter) -> None:
    deep: dict[str, Any] = {"text": "leaf"}
    for _ in range(400):
        deep = {"type": "wrapper", "inner": deep}

    count = counter.count_messages({"messages": [{"role": "user", "content": [deep]}]})

    assert count > 400


def test_piece_size_stays_under_the_wrappers_refusals() -> None:
    with pytest.raises(ValueError, match="piece_chars"):
        TokenCounter(piece_chars=60_000)
    # The largest allowed piece of 4-byte characters is within 200,000 tokens.
    largest = TokenCounter(piece_chars=50_000, tokenize_tokens=10**9)
    assert largest.count_text("\U0001f600\U0001f9ea" * 60_000) > 0


@pytest.fixture
def gateway_http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    """A client for the session gateway (this directory's ``http`` is the metering one)."""
    with httpx.Client(base_url=gateway.url, timeout=30.0) as client:
        yield client


def test_count_tokens_of_a_two_megabyte_prompt(
    gateway_http: httpx.Client, auth: dict[str, str]
) -> None:
    # gpt-test is served by an OpenAI-type provider: no upstream count_tokens, so the
    # gateway answers with its own count.
    body = {"model": GPT, "messages": [{"role": "user", "content": "word " * 400_000}]}

    response = gateway_http.post("/v1/messages/count_tokens", headers=auth, json=body)

    assert response.status_code == 200, response.text
    # " word" is one token; "word" at the start is one; framing adds a few.
    assert 400_000 <= response.json()["input_tokens"] <= 400_010
