"""Speed of the guards: ``.venv/bin/python tests/guards/bench_guards.py``.

Prints microseconds per KB of text for each text guard on realistic 1 KB and 100 KB
texts (user prompts from the benign corpus, Python source, a little personal data), the
stream redactor's cost per delta, and the limits guard's cost per request. Each number
is the best of several runs (the least disturbed by other work on the machine).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tollway.guards.base import RequestView, TextGuard
from tollway.guards.injection import InjectionGuard
from tollway.guards.limits import LimitsGuard
from tollway.guards.pii import PiiGuard
from tollway.guards.redact import StreamRedactor
from tollway.guards.secrets import SecretsGuard
from tollway.guards.texts import request_texts
from tollway.metering.tokens import TokenCounter

HERE = Path(__file__).parent
SOURCE = sorted((HERE.parents[1] / "src" / "tollway").rglob("*.py"))


def realistic(size: int, seed: int = 7) -> str:
    """Prompts, code and a few emails and phone numbers, ``size`` characters."""
    rng = random.Random(seed)
    with (HERE / "corpora" / "self_instruct_prompts.jsonl").open(encoding="utf-8") as lines:
        prompts = [json.loads(line)["text"] for line in lines]
    code = "\n".join(path.read_text(encoding="utf-8") for path in SOURCE[:40])
    parts, length = [], 0
    while length < size:
        if rng.random() < 0.7:
            part = rng.choice(prompts)
        else:
            start = rng.randrange(len(code) - 800)
            part = code[start : start + 800]
        if rng.random() < 0.05:
            part += " Reach me at jane.roe@example.org or +1 415 555 2671."
        parts.append(part)
        length += len(part) + 1
    return "\n".join(parts)[:size]


def best(run: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def text_guards() -> None:
    guards: list[TextGuard] = [PiiGuard({}), SecretsGuard({}), InjectionGuard({})]
    for size in (1024, 100 * 1024):
        text = realistic(size)
        for guard in guards:
            guard.scan(text)  # warm: lazy metadata, compiled patterns
            seconds = best(partial(guard.scan, text), 200 if size < 4096 else 10)
            print(
                f"{guard.name:10} {size // 1024:4} KB  {seconds * 1e6 / (size / 1024):8.1f} us/KB"
            )


def stream() -> None:
    answer = realistic(50 * 1024, seed=11)
    guards: list[TextGuard] = [PiiGuard({}), SecretsGuard({})]
    for size in (4, 20, 80):
        deltas = [answer[i : i + size] for i in range(0, len(answer), size)]

        def run(d: list[str] = deltas) -> str:
            redactor = StreamRedactor(guards)
            return "".join(redactor.feed(delta) for delta in d) + redactor.flush()

        seconds = best(run, 3)
        whole = best(lambda: [g.scan(answer) for g in guards], 3)
        print(
            f"stream     {size:3}-char deltas  {seconds * 1e6 / len(deltas):6.1f} us per delta "
            f"({seconds / whole:.1f}x scanning the whole answer once)"
        )


def limits() -> None:
    counter = TokenCounter()
    counter.count_text("warm up")
    for size in (1024, 100 * 1024):
        payload = {"model": "m", "messages": [{"role": "user", "content": realistic(size)}]}
        texts = tuple(slot.get() for slot in request_texts("chat.completions", payload))
        view = RequestView("chat.completions", payload, texts)
        for label, guard in (
            ("estimate", LimitsGuard({"max_input_tokens": 100, "max_messages": 10})),
            ("tokenizer", LimitsGuard({"max_input_tokens": 100}, tokens=counter)),
        ):
            seconds = best(partial(guard.check, view), 20)
            print(f"limits     {size // 1024:4} KB  {label:9} {seconds * 1e6:8.1f} us per request")
        seconds = best(partial(request_texts, "chat.completions", payload), 100)
        print(f"texts      {size // 1024:4} KB  {seconds * 1e6:8.1f} us to list the slots")


if __name__ == "__main__":
    text_guards()
    stream()
    limits()
