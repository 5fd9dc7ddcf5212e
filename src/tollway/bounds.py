"""Every number a client, an operator or an upstream controls, bounded once.

The bounds are chosen so that nothing downstream can overflow: a call's cost in integer
pico-dollars fits a signed 64-bit column, and a budget in nano-dollars fits one too.

    per call   <= MAX_ATTEMPTS attempts
    per attempt: input <= MAX_TOKENS, output <= MAX_TOKENS (upstream counts beyond are
                 implausible and replaced by an estimate)
    per token  <= MAX_PRICE_MTOK / 1e6 USD
    => a call costs at most 32 * 2 * 1e7 * 1e4 / 1e6 USD = 6.4e6 USD = 6.4e18 pico < 2**63

    budgets    <= MAX_BUDGET_USD = 1e9 USD = 1e18 nano < 2**63
"""

from __future__ import annotations

from decimal import Decimal

INT64_MAX = 2**63 - 1
# JavaScript's safe integer range: metadata is read back by browsers and other tools.
SAFE_INT = 2**53 - 1

# Upstream token counts above this are implausible (the largest context windows served
# today are 10M tokens; no single call reads or writes more).
MAX_TOKENS = 10_000_000
# Output-size fields a client may send (max_tokens, max_completion_tokens,
# max_output_tokens): no provider accepts more than a few hundred thousand.
MAX_OUTPUT_TOKENS = 1_048_576
# Choices per call (OpenAI's documented maximum for ``n``) and completions' best_of.
MAX_CHOICES = 128
MAX_BEST_OF = 20
# Upstream attempts of one call, whatever the retry and fallback settings say.
MAX_ATTEMPTS = 32
# Configured prices: USD per million tokens (the dearest model sold today is ~$600).
MAX_PRICE_MTOK = Decimal(10_000)
MAX_BUDGET_USD = Decimal(1_000_000_000)

# Model names: what clients send and what is journaled with every call.
MAX_MODEL_NAME = 200

# Key and project metadata: journaled with every call of the key.
MAX_METADATA_FIELDS = 64
MAX_METADATA_KEY = 64
MAX_METADATA_TEXT = 1024
MAX_METADATA_BYTES = 8192
MAX_METADATA_DEPTH = 4

# Request headers: their total size (names and values).
MAX_HEADER_BYTES = 64 * 1024


def printable(text: str) -> bool:
    """No control characters (C0, DEL, C1): nothing a database, a log line or a header
    would treat specially."""
    return not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)
