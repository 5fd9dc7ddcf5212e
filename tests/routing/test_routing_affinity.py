"""Prompt-cache affinity: the calls of one conversation stay on one deployment.

``affinity_key`` per endpoint and source; the rendezvous choice on a real router (keys
spread by weight, each key always on the same deployment, an unavailable deployment
hands on only its own keys); and the real gateway keeping a conversation on one fake
upstream. The gateway tests (``test_gateway_*``) need the forwarder to pass
``affinity_key(...)`` to ``Plan.choose``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest
from routing_support import (
    AUTH,
    Gateway,
    StartGateway,
    Upstreams,
    deployment,
    model,
)

from fake_upstream import Fail
from tollway.config import CircuitConfig, DeploymentConfig, ModelConfig, ProviderConfig, Timeouts
from tollway.dialects.endpoints import Endpoint
from tollway.providers.openai import OpenAIProvider
from tollway.routing.affinity import affinity_key
from tollway.routing.router import Plan, Router
from tollway.routing.strategy import LeastBusy, LowestLatency, Weighted

CHAT = Endpoint.CHAT_COMPLETIONS
SYSTEM = {"role": "system", "content": "You are a terse assistant."}
KEY_ID = "key_01HZX8"

# --------------------------------------------------------------------------- affinity_key


def _chat(*messages: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **fields}


def _user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def test_chat_opening_is_the_same_on_every_turn() -> None:
    first = affinity_key(CHAT, _chat(SYSTEM, _user("Plan a trip.")), KEY_ID)
    third = affinity_key(
        CHAT,
        _chat(
            SYSTEM,
            _user("Plan a trip."),
            _assistant("Where to?"),
            _user("Lisbon."),
            _assistant("When?"),
            _user("May."),
        ),
        KEY_ID,
    )
    assert first is not None and first.startswith("opening:")
    assert third == first


def test_chat_opening_tells_conversations_apart() -> None:
    base = affinity_key(CHAT, _chat(SYSTEM, _user("Plan a trip.")), KEY_ID)
    other_question = affinity_key(CHAT, _chat(SYSTEM, _user("Fix my code.")), KEY_ID)
    other_system = affinity_key(
        CHAT, _chat({"role": "system", "content": "Be verbose."}, _user("Plan a trip.")), KEY_ID
    )
    developer = affinity_key(
        CHAT, _chat({"role": "developer", "content": "Be verbose."}, _user("Plan a trip.")), KEY_ID
    )
    no_system = affinity_key(CHAT, _chat(_user("Plan a trip.")), KEY_ID)
    assert len({base, other_question, other_system, no_system}) == 4
    assert developer not in (base, no_system)  # a developer message is system text too


def test_chat_opening_reads_only_a_bounded_head() -> None:
    head = "x" * 5000
    long_a = affinity_key(CHAT, _chat(_user(head + "tail one")), KEY_ID)
    long_b = affinity_key(CHAT, _chat(_user(head + "tail two")), KEY_ID)
    assert long_a == long_b  # what lies past the budget is never read
    assert affinity_key(CHAT, _chat(_user("y" + head)), KEY_ID) != long_a
    # A long system prompt shared by every conversation does not hide the question.
    shared = {"role": "system", "content": "rules " * 10_000}
    assert affinity_key(CHAT, _chat(shared, _user("a")), KEY_ID) != affinity_key(
        CHAT, _chat(shared, _user("b")), KEY_ID
    )
    # Nor do a million content parts cost more than their first few.
    parts = [{"type": "text", "text": "p"}] * 1_000_000
    assert affinity_key(CHAT, _chat(_user(parts)), KEY_ID) == affinity_key(
        CHAT, _chat(_user(parts[:100])), KEY_ID
    )


def test_moving_the_cache_breakpoint_keeps_the_key() -> None:
    marked = {"type": "text", "text": "Summarise this.", "cache_control": {"type": "ephemeral"}}
    plain = {"type": "text", "text": "Summarise this."}
    first = {"model": "m", "max_tokens": 9, "messages": [_user([marked])]}
    later = {
        "model": "m",
        "max_tokens": 9,
        "messages": [_user([plain]), _assistant("Done."), _user([{**plain, "text": "More"}])],
    }
    key = affinity_key(Endpoint.MESSAGES, first, KEY_ID)
    assert key is not None and key == affinity_key(Endpoint.MESSAGES, later, KEY_ID)


@pytest.mark.parametrize(
    ("fields", "source"),
    [
        ({"prompt_cache_key": "k", "user": "u", "safety_identifier": "s"}, "prompt_cache_key"),
        ({"user": "u", "safety_identifier": "s"}, "user"),
        ({"safety_identifier": "s"}, "safety_identifier"),
    ],
)
def test_chat_hints_come_first_in_order(fields: dict[str, str], source: str) -> None:
    one = affinity_key(CHAT, _chat(_user("a"), **fields), KEY_ID)
    other = affinity_key(CHAT, _chat(_user("b"), **fields), KEY_ID)
    assert one is not None and one.startswith(source + ":")
    assert one == other  # the hint names the conversation, whatever its text


def test_a_hint_that_is_not_text_is_ignored() -> None:
    for value in (42, "", None, ["u"], {"id": "u"}):
        key = affinity_key(CHAT, _chat(_user("a"), user=value), KEY_ID)
        assert key == affinity_key(CHAT, _chat(_user("a")), KEY_ID)


def test_messages_user_id_then_opening() -> None:
    def body(text: str, **fields: Any) -> dict[str, Any]:
        return {"model": "m", "max_tokens": 9, "messages": [_user(text)], **fields}

    hinted = affinity_key(Endpoint.MESSAGES, body("a", metadata={"user_id": "u-7"}), KEY_ID)
    assert hinted is not None and hinted.startswith("metadata.user_id:")
    assert hinted == affinity_key(Endpoint.MESSAGES, body("b", metadata={"user_id": "u-7"}), None)
    opening = affinity_key(Endpoint.MESSAGES, body("a", metadata={"user_id": 7}), KEY_ID)
    assert opening is not None and opening.startswith("opening:")
    assert opening == affinity_key(Endpoint.MESSAGES, body("a"), KEY_ID)
    blocks = [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}]
    with_system = affinity_key(Endpoint.MESSAGES, body("a", system=blocks), KEY_ID)
    assert with_system not in (None, opening)
    unmarked = [{"type": "text", "text": "Be terse."}]
    assert with_system == affinity_key(Endpoint.MESSAGES, body("a", system=unmarked), KEY_ID)


def test_responses_hints_and_opening() -> None:
    responses = Endpoint.RESPONSES
    cached = affinity_key(responses, {"input": "a", "prompt_cache_key": "k"}, KEY_ID)
    assert cached is not None and cached.startswith("prompt_cache_key:")
    by_id = affinity_key(responses, {"input": "a", "conversation": "conv_1"}, KEY_ID)
    by_object = affinity_key(responses, {"input": "b", "conversation": {"id": "conv_1"}}, KEY_ID)
    assert by_id is not None and by_id.startswith("conversation:") and by_id == by_object
    # The whole history sent again: the opening holds across turns.
    history = [
        {"role": "developer", "content": "Be terse."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
    ]
    later = [
        *history,
        {"type": "message", "role": "assistant", "content": [{"type": "output_text"}]},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
        {"role": "user", "content": "Thanks"},
    ]
    first = affinity_key(responses, {"input": history}, KEY_ID)
    assert first is not None and first.startswith("opening:")
    assert first == affinity_key(responses, {"input": later}, KEY_ID)
    assert affinity_key(responses, {"input": "Hi", "instructions": "Be terse."}, KEY_ID) != (
        affinity_key(responses, {"input": "Hi"}, KEY_ID)
    )


def test_responses_chain_falls_back_to_the_key() -> None:
    # previous_response_id changes every turn and the body holds only the new turn.
    turn_two = {"input": "And then?", "previous_response_id": "resp_1"}
    turn_three = {"input": "Why?", "previous_response_id": "resp_2", "instructions": "Be terse."}
    key = affinity_key(Endpoint.RESPONSES, turn_two, KEY_ID)
    assert key is not None and key.startswith("key:")
    assert key == affinity_key(Endpoint.RESPONSES, turn_three, KEY_ID)
    assert affinity_key(Endpoint.RESPONSES, turn_two, None) is None
    hinted = affinity_key(Endpoint.RESPONSES, {**turn_two, "user": "u"}, KEY_ID)
    assert hinted is not None and hinted.startswith("user:")


def test_completions_prompt_head() -> None:
    opening = "Translate to French:\n" + "sea otter => loutre de mer\n" * 20
    first = affinity_key(Endpoint.COMPLETIONS, {"prompt": opening}, KEY_ID)
    later = affinity_key(Endpoint.COMPLETIONS, {"prompt": opening + "cheese =>"}, KEY_ID)
    assert first is not None and first.startswith("opening:") and first == later
    tokens = affinity_key(Endpoint.COMPLETIONS, {"prompt": list(range(500))}, KEY_ID)
    assert tokens == affinity_key(Endpoint.COMPLETIONS, {"prompt": list(range(600))}, KEY_ID)
    hinted = affinity_key(Endpoint.COMPLETIONS, {"prompt": "x", "user": "u"}, KEY_ID)
    assert hinted is not None and hinted.startswith("user:")


@pytest.mark.parametrize(
    "endpoint",
    [Endpoint.EMBEDDINGS, Endpoint.COUNT_TOKENS, Endpoint.GENERATE_CONTENT, Endpoint.CONVERSE],
)
def test_no_prompt_cache_no_key(endpoint: Endpoint) -> None:
    payload = {"input": "a", "messages": [_user("a")], "user": "u", "prompt_cache_key": "k"}
    assert affinity_key(endpoint, payload, KEY_ID) is None


def test_nothing_to_go_by_falls_back_to_the_key() -> None:
    key = affinity_key(CHAT, {"model": "m"}, KEY_ID)
    assert key is not None and key.startswith("key:")
    assert key != affinity_key(CHAT, {"model": "m"}, "key_other")
    assert affinity_key(CHAT, {"model": "m"}, None) is None
    assert affinity_key(Endpoint.RESPONSES, {"input": []}, None) is None


def test_odd_shapes_do_not_raise() -> None:
    nested: Any = "deep"
    for _ in range(5000):
        nested = [nested]
    odd = [
        _chat("not a message", {"role": 5}, _user(None)),
        _chat(_user(nested)),
        _chat(_user("\ud800 lone surrogate")),
        _chat(_user({"type": "text", "text": 1.5, "flag": True})),
    ]
    keys = [affinity_key(CHAT, payload, None) for payload in odd]
    assert keys[0] is None  # no system text, and the user message has no content
    assert all(key is not None for key in keys[1:])
    assert affinity_key(Endpoint.RESPONSES, {"input": [1, "x", None]}, KEY_ID) == (
        affinity_key(Endpoint.RESPONSES, {}, KEY_ID)
    )


# --------------------------------------------------------------------------- Plan.choose

STRATEGIES = {"weighted": Weighted(), "least-busy": LeastBusy(), "lowest-latency": LowestLatency()}
PROVIDERS = {
    name: OpenAIProvider(name, ProviderConfig(type="openai", api_key="sk-unit-0000"), Timeouts())
    for name in ("p-a", "p-b", "p-c")
}
KEYS = [f"opening:{index:08x}" for index in range(30_000)]


def _plan(weights: dict[str, float], **fields: Any) -> Plan:
    limits = fields.pop("limits", {})
    entry = ModelConfig(
        name="m",
        deployments=[
            DeploymentConfig(
                provider=name, model=f"up-{name}", weight=weight, **limits.get(name, {})
            )
            for name, weight in weights.items()
        ],
        **fields,
    )
    return Router(
        [entry], dict(PROVIDERS), CircuitConfig(failures=1, cooldown=60), STRATEGIES
    ).resolve("m")


def _owner(plan: Plan, key: str | None, avoid: set[int] | None = None) -> str:
    route = plan.choose(avoid, key)
    assert route is not None
    return route.provider.name


def _owners(plan: Plan, keys: list[str]) -> list[str]:
    return [_owner(plan, key) for key in keys]


def _within(count: int, total: int, share: float) -> bool:
    """``count`` of ``total`` is within four standard deviations of ``share``."""
    spread = 4 * math.sqrt(total * share * (1 - share))
    return abs(count - total * share) <= spread


def test_keys_spread_by_weight() -> None:
    plan = _plan({"p-a": 5, "p-b": 3, "p-c": 2})
    counts = Counter(_owners(plan, KEYS))
    for name, share in (("p-a", 0.5), ("p-b", 0.3), ("p-c", 0.2)):
        assert _within(counts[name], len(KEYS), share), counts


def test_a_key_always_lands_on_the_same_deployment() -> None:
    plan = _plan({"p-a": 1, "p-b": 1, "p-c": 1})
    keys = KEYS[:300]
    owners = _owners(plan, keys)
    for _ in range(5):
        assert _owners(plan, keys) == owners
    # Another router (a restart), with the deployments listed in another order.
    again = _plan({"p-c": 1, "p-a": 1, "p-b": 1})
    assert _owners(again, keys) == owners
    assert set(owners) == {"p-a", "p-b", "p-c"}


_OTHER_PROCESS = """
from tollway.config import CircuitConfig, ModelConfig, ProviderConfig, Timeouts
from tollway.providers.openai import OpenAIProvider
from tollway.routing.router import Router
from tollway.routing.strategy import Weighted

STRATEGIES = {"weighted": Weighted()}
config = ProviderConfig(type="openai", api_key="sk-unit-0000")
providers = {n: OpenAIProvider(n, config, Timeouts()) for n in ("p-a", "p-b", "p-c")}
deployments = [{"provider": n, "model": "up-" + n} for n in providers]
models = [ModelConfig(name="m", deployments=deployments)]
plan = Router(models, providers, CircuitConfig(), STRATEGIES)
routes = [plan.resolve("m").choose(None, f"opening:{i:08x}") for i in range(300)]
print(",".join(route.provider.name for route in routes if route))
"""


def test_every_process_maps_a_key_the_same_way() -> None:
    # Another worker or host: str hashes are salted per process, these must not be.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    plan = _plan({"p-a": 1, "p-b": 1, "p-c": 1})
    assert done.stdout.strip().split(",") == _owners(plan, KEYS[:300])


def test_an_open_circuit_moves_only_its_own_keys() -> None:
    plan = _plan({"p-a": 5, "p-b": 3, "p-c": 2})
    before = _owners(plan, KEYS)
    sick = next(d for d in plan.deployments if d.provider.name == "p-b")
    sick.breaker.failure()  # one failure opens it (failures=1)
    after = _owners(plan, KEYS)
    moved = Counter(new for old, new in zip(before, after, strict=True) if old == "p-b")
    kept = [new == old for old, new in zip(before, after, strict=True) if old != "p-b"]
    assert all(kept)
    assert sum(moved.values()) == before.count("p-b") and "p-b" not in moved
    # Its keys go on by the remaining weights, 5 : 2.
    assert _within(moved["p-a"], sum(moved.values()), 5 / 7), moved
    sick.breaker.success()
    assert _owners(plan, KEYS) == before  # recovered: its conversations come back


@pytest.mark.parametrize("limit", [{"max_parallel": 1}, {"rpm": 1}])
def test_a_saturated_deployment_is_skipped(limit: dict[str, int]) -> None:
    if time.time() % 60 > 58:
        time.sleep(2.5)  # the rpm window is the calendar minute: not across its end
    plan = _plan({"p-a": 1, "p-b": 1, "p-c": 1}, limits={"p-b": limit})
    keys = KEYS[:3000]
    before = _owners(plan, keys)
    busy = next(d for d in plan.deployments if d.provider.name == "p-b")
    started = busy.begin()
    try:
        during = _owners(plan, keys)
    finally:
        busy.end(started, ok=True)
    assert "p-b" in before and "p-b" not in during
    assert all(new == old for old, new in zip(before, during, strict=True) if old != "p-b")
    if "max_parallel" in limit:
        assert _owners(plan, keys) == before


def test_the_strategy_decides_without_key_when_opted_out_and_on_retries() -> None:
    plan = _plan({"p-a": 1, "p-b": 1})
    key = KEYS[0]
    home = _owner(plan, key)
    assert {_owner(plan, None) for _ in range(200)} == {"p-a", "p-b"}
    opted_out = _plan({"p-a": 1, "p-b": 1}, affinity=False)
    assert not opted_out.affine
    assert {_owner(opted_out, key) for _ in range(200)} == {"p-a", "p-b"}
    # A retry avoids the deployment that just failed, even the key's own.
    failed = {id(d) for d in plan.deployments if d.provider.name == home}
    assert {_owner(plan, key, failed) for _ in range(50)} == {"p-a", "p-b"} - {home}


def test_affinity_outranks_load_strategies() -> None:
    # A warm cache is worth more than an idle deployment; limits still bound the load.
    plan = _plan({"p-a": 1, "p-b": 1}, routing="least-busy")
    key = KEYS[1]
    home = next(d for d in plan.deployments if d.provider.name == _owner(plan, key))
    started = [home.begin() for _ in range(3)]
    assert {_owner(plan, key) for _ in range(20)} == {home.provider.name}
    assert _owner(plan, None) != home.provider.name  # without a key: the idle one
    for begun in started:
        home.end(begun, ok=True)


def test_single_and_unavailable_plans() -> None:
    solo = _plan({"p-a": 1})
    assert not solo.affine and _owner(solo, KEYS[0]) == "p-a"
    plan = _plan({"p-a": 1, "p-b": 1})
    for item in plan.deployments:
        item.breaker.failure()
    assert plan.choose(None, KEYS[0]) is None


# --------------------------------------------------------------------------- the gateway
# These need the wiring: Forwarder.run passes affinity_key(...) to Plan.choose.

STICKY = "sticky"
LOOSE = "loose"
STICKY_CLAUDE = "sticky-claude"
MODELS = [
    model(STICKY, deployments=[deployment(f"oa-{n}", f"st-{n}") for n in "abc"]),
    model(LOOSE, affinity=False, deployments=[deployment(f"oa-{n}", f"lo-{n}") for n in "abc"]),
    model(STICKY_CLAUDE, deployments=[deployment(f"an-{n}", f"sc-{n}") for n in "abc"]),
]


def _served_by(gw: Gateway, name: str, messages: list[dict[str, Any]], **body: Any) -> str:
    """The fake (``a``, ``b``, ``c``) that answered one chat call."""
    response = gw.chat(name, messages=messages, **body)
    assert response.status_code == 200, response.text
    upstream: str = response.json()["model"]
    return upstream[-1]


def _requests(ups: Upstreams) -> dict[str, int]:
    return {name: len(fake.requests) for name, fake in zip("abc", ups, strict=True)}


def test_gateway_keeps_one_conversation_on_one_upstream(
    start: StartGateway, ups: Upstreams
) -> None:
    gw = start(MODELS)
    history: list[dict[str, Any]] = [SYSTEM, _user("Plan a trip to Lisbon.")]
    served = []
    for turn in range(6):
        served.append(_served_by(gw, STICKY, history))
        history += [_assistant(f"Answer {turn}."), _user(f"Follow-up {turn}.")]
    assert len(set(served)) == 1, served
    assert sorted(_requests(ups).values()) == [0, 0, 6]


def test_gateway_spreads_different_conversations(start: StartGateway, ups: Upstreams) -> None:
    gw = start(MODELS)
    homes = {}
    for index in range(30):
        opening = [SYSTEM, _user(f"Question number {index}.")]
        first = _served_by(gw, STICKY, opening)
        second = _served_by(gw, STICKY, [*opening, _assistant("Yes."), _user("Go on.")])
        assert first == second, index
        homes[index] = first
    assert set(homes.values()) == {"a", "b", "c"}, Counter(homes.values())


def test_gateway_anthropic_user_id_keeps_a_user_together(
    start: StartGateway, ups: Upstreams
) -> None:
    gw = start(MODELS)
    homes: dict[str, set[str]] = {}
    with gw.http() as client:
        for user in ("user-1", "user-2", "user-3", "user-4", "user-5", "user-6"):
            for topic in ("tides", "ferns", "maps"):
                body = {
                    "model": STICKY_CLAUDE,
                    "max_tokens": 20,
                    "metadata": {"user_id": user},
                    "messages": [_user(f"Tell me about {topic}.")],
                }
                response = client.post("/v1/messages", json=body, headers=AUTH)
                assert response.status_code == 200, response.text
                homes.setdefault(user, set()).add(response.json()["model"])
    assert all(len(served) == 1 for served in homes.values()), homes
    assert len(set().union(*homes.values())) > 1, homes


def test_gateway_without_affinity_spreads_one_conversation(
    start: StartGateway, ups: Upstreams
) -> None:
    gw = start(MODELS)
    conversation = [SYSTEM, _user("Plan a trip to Lisbon.")]
    served = [_served_by(gw, LOOSE, conversation) for _ in range(30)]
    # Weighted random, 1 : 1 : 1 (all 30 on one upstream: p = 3 / 3**30).
    assert len(set(served)) > 1, Counter(served)


def test_gateway_open_circuit_moves_only_its_conversations(
    start: StartGateway, ups: Upstreams
) -> None:
    gw = start(MODELS, circuit={"failures": 1, "cooldown": 30})
    openings = [[SYSTEM, _user(f"Topic {index}.")] for index in range(24)]
    homes = [_served_by(gw, STICKY, opening) for opening in openings]
    sick = homes[0]
    assert set(homes) == {"a", "b", "c"}, homes
    fake = {"a": ups.a, "b": ups.b, "c": ups.c}[sick]
    fake.script(Fail(500), persistent=True)
    # The next call of a conversation homed there fails over (a retry) and opens the circuit.
    assert _served_by(gw, STICKY, openings[0]) != sick
    failed = len(fake.requests)
    moved = [_served_by(gw, STICKY, opening) for opening in openings]
    again = [_served_by(gw, STICKY, opening) for opening in openings]
    assert moved == again  # the moved conversations settle on one new home each
    for home, now in zip(homes, moved, strict=True):
        assert now == home if home != sick else now != sick
    assert len(fake.requests) == failed  # nothing more was sent to the open circuit
