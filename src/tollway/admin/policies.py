"""Field types of the per-project and per-key policies: model scopes, guards, CORS
origins, the response cache and body capture, each bounded like metadata (they ride in every cached
key entry, and are audited as JSON)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BeforeValidator, Field
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from tollway.admin.fields import _json_integer, object_problem
from tollway.bounds import MAX_METADATA_BYTES, MAX_METADATA_FIELDS, MAX_MODEL_NAME
from tollway.capture import MAX_CAPTURE_BYTES

# A model scope is matched name by name on first use of each model: keep it short.
MAX_SCOPE_ENTRIES = 256
# Guards: the built-in ones and plugin guards (whose registry checks names later).
BUILTIN_GUARDS = ("pii", "secrets", "injection", "limits")
GUARD_ACTIONS = ("block", "redact", "flag", "off")
GUARD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_GUARDS = 32
MAX_GUARDS_BYTES = MAX_METADATA_BYTES
# Guards that judge a request as a whole: there is no span to redact.
REQUEST_GUARDS = frozenset({"limits"})
MAX_ORIGINS = 64
MAX_ORIGIN_CHARS = 300
MAX_CACHE_TTL = 86_400

ModelScope = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_MODEL_NAME)]],
    Field(
        max_length=MAX_SCOPE_ENTRIES,
        description="Model names, globs ('claude-*') and groups ('group:cheap') it may "
        "use; null: every model.",
    ),
]


def _located(problem: str, *within: str | int) -> PydanticCustomError:
    # ``within`` extends the error's location below the field (see admin/app.py).
    return PydanticCustomError("policy", problem, {"within": within})


def check_guards(value: dict[str, Any]) -> dict[str, Any]:
    """Guard name -> ``{"action": block|redact|flag|off, ...options}``, bounded."""
    if len(value) > MAX_GUARDS:
        raise ValueError(f"at most {MAX_GUARDS} guards")
    for name, setting in value.items():
        if not GUARD_NAME.match(name):
            raise _located(
                "a guard name is a lowercase letter, then up to 39 lowercase letters, "
                "digits or '_' (built in: " + ", ".join(BUILTIN_GUARDS) + ")",
                name,
            )
        if not isinstance(setting, dict):
            raise _located("must be an object with an 'action'", name)
        action = setting.get("action")
        if action not in GUARD_ACTIONS:
            raise _located(f"must be one of {', '.join(GUARD_ACTIONS)}", name, "action")
        if action == "redact" and name in REQUEST_GUARDS:
            raise _located("this guard judges whole requests: block, flag or off", name, "action")
        options = {k: v for k, v in setting.items() if k != "action"}
        if len(options) > MAX_METADATA_FIELDS:
            raise _located(f"at most {MAX_METADATA_FIELDS} options", name)
        found = object_problem(options, "option names")
        if found:
            path, problem = found
            raise _located(problem, name, *path)
    if len(orjson.dumps(value)) > MAX_GUARDS_BYTES:
        raise ValueError(f"guards must be at most {MAX_GUARDS_BYTES} bytes as JSON")
    return value


def _guards_schema(schema: JsonDict) -> None:
    """What JSON Schema can say of guards; the bounds are in the description."""
    for branch in _branches(schema):
        if branch.get("type") == "object":
            branch["maxProperties"] = MAX_GUARDS
            branch["propertyNames"] = {"pattern": GUARD_NAME.pattern}
            branch["additionalProperties"] = {
                "type": "object",
                "required": ["action"],
                "properties": {"action": {"enum": list(GUARD_ACTIONS)}},
            }


def _branches(schema: JsonDict) -> list[JsonDict]:
    branches = schema.get("anyOf")
    found = branches if isinstance(branches, list) else [schema]
    return [branch for branch in found if isinstance(branch, dict)]


Guards = Annotated[
    dict[str, Any],
    AfterValidator(check_guards),
    Field(
        json_schema_extra=_guards_schema,
        description=f"Guard name ({', '.join(BUILTIN_GUARDS)}, or a plugin guard's) -> "
        f"{{'action': {'|'.join(GUARD_ACTIONS)}, ...options}}. At most {MAX_GUARDS} guards "
        f"and {MAX_GUARDS_BYTES} bytes; options are bounded like metadata.",
    ),
]

# scheme://host[:port]: a DNS name (ASCII; IDNs as punycode, as browsers send them),
# an IPv4 address or a bracketed IPv6 one.
_ORIGIN = re.compile(r"^(https?)://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::([0-9]{1,5}))?$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
ORIGIN_RULE = (
    "an origin is http(s)://host[:port]: no path (not even '/'), query, user or "
    "wildcard; '*' alone allows any origin"
)


def _host_ok(host: str) -> bool:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    labels = host.split(".")
    return len(host) <= 253 and all(_LABEL.match(label) for label in labels)


def normal_origin(text: str) -> str | None:
    """An origin as a browser's Origin header spells it (lowercase, no default port), or
    None when ``text`` is not one."""
    match = _ORIGIN.match(text.lower())
    if match is None:
        return None
    scheme, host, port = match.groups()
    if not _host_ok(host):
        return None
    if port is None:
        return f"{scheme}://{host}"
    number = int(port)
    if not 1 <= number <= 65535:
        return None
    return (
        f"{scheme}://{host}" if number == _DEFAULT_PORTS[scheme] else f"{scheme}://{host}:{number}"
    )


def check_origins(value: list[str]) -> list[str]:
    """Origins normalized and without repeats; ``*`` only alone."""
    if "*" in value:
        if any(item != "*" for item in value):
            raise _located("'*' allows every origin: give it alone", value.index("*"))
        return ["*"]
    out: dict[str, None] = {}
    for index, item in enumerate(value):
        origin = normal_origin(item)
        if origin is None:
            raise _located(ORIGIN_RULE, index)
        out[origin] = None
    return list(out)


CorsOrigins = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_ORIGIN_CHARS)]],
    Field(
        max_length=MAX_ORIGINS,
        description="Browser origins allowed to call with the project's keys: "
        "'https://app.example.com', 'http://localhost:3000', or '*' alone for any. "
        "Empty or null: none (no CORS headers).",
    ),
    AfterValidator(check_origins),
]

CacheTtl = Annotated[
    int,
    Field(ge=1, le=MAX_CACHE_TTL, description="Seconds an answer is kept."),
    BeforeValidator(_json_integer),
]

MIN_CAPTURE_BYTES = 1024
CaptureBytes = Annotated[
    int,
    Field(
        ge=MIN_CAPTURE_BYTES,
        le=MAX_CAPTURE_BYTES,
        description="Bytes kept of each request and each response (the rest is cut).",
    ),
    BeforeValidator(_json_integer),
]
