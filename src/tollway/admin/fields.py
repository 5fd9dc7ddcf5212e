"""Field types of the management API: limits, money, times, credentials, metadata,
and the checks that keep what is stored within what every database and client can hold."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    WithJsonSchema,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from tollway.bounds import (
    MAX_BUDGET_USD,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_FIELDS,
    MAX_METADATA_KEY,
    MAX_METADATA_TEXT,
    SAFE_INT,
    printable,
)

_T = TypeVar("_T")
BudgetPeriod = Literal["day", "month"]
Role = Literal["admin", "operator", "viewer"]


def _json_integer(value: Any) -> Any:
    # JSON has no integer type of its own (2.0 is an integer), but true and "2" are not.
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


# Column ranges: INTEGER for per-minute limits. Lifetime counts are BIGINT columns but
# are shown as JSON numbers, which browsers read exactly only up to 2**53 - 1.
Limit = Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(_json_integer)]
BigLimit = Annotated[int, Field(ge=1, le=SAFE_INT), BeforeValidator(_json_integer)]
# Budgets are held in integer nano-dollars: MAX_BUDGET_USD keeps them inside BIGINT.
Money = Annotated[
    Decimal,
    Field(ge=0, le=MAX_BUDGET_USD, max_digits=20, decimal_places=10),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": int(MAX_BUDGET_USD)},
                {"type": "string", "pattern": r"^\d{1,10}(\.\d{1,10})?$"},
            ]
        }
    ),
]
_TTL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 10 * 365 * 86400
TTL_SCHEMA: JsonDict = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*0*[1-9][0-9]*\s*[smhd]?\s*$"},
        {"type": "integer", "minimum": 1, "maximum": MAX_TTL_SECONDS},
        {"type": "null"},
    ]
}


def parse_ttl(value: str | int) -> int:
    """Seconds from ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("ttl must be a duration like '90m' or a number of seconds")
    if isinstance(value, int):
        seconds = value
    else:
        match = _TTL.match(value)
        if not match:
            raise ValueError("ttl must look like '90s', '15m', '24h', '7d' or be seconds")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("ttl must be positive")
    if seconds > MAX_TTL_SECONDS:
        raise ValueError("ttl must be at most 10 years")
    return seconds


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, from a "\\ud800" escape in JSON
        return "must be valid Unicode"
    return None


def storable(value: Any) -> None:
    """Every string (and object key) inside ``value`` can be stored and logged: databases
    refuse NUL in text, and UTF-8 cannot encode lone surrogates. Iterative, so a deeply
    nested body cannot exhaust the stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                raise ValueError(problem)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _header_safe(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value) or value != value.strip():
        raise ValueError("must not contain spaces at the ends or control characters")
    return value


# A provider credential is sent in a header: it must be a non-empty, single-line token.
Credential = Annotated[
    str,
    AfterValidator(_header_safe),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "pattern": r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$",
        }
    ),
]
# What ``bounds.printable`` allows, for the API's description.
_PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]+$"


def _present(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null (leave the field out to keep its value)")
    return value


def _not_nullable(schema: JsonDict) -> None:
    """Document a ``Patch`` field as its value type alone: null is refused."""
    branches = schema.pop("anyOf", None)
    schema.pop("default", None)
    if isinstance(branches, list):
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1 and isinstance(kept[0], dict):
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept


# A field of a partial update that may be left out (unchanged) but not sent as null:
# its column has no "unset" state, so null could only fail later, in the database.
Patch = Annotated[_T | None, BeforeValidator(_present), Field(json_schema_extra=_not_nullable)]


def _utc_instant(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before the year 1 in UTC
        raise ValueError("is out of range once converted to UTC") from None


_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _iso_text(value: Any) -> Any:
    # Pydantic would also read numbers as Unix times; the API documents ISO 8601 only.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("must be an ISO 8601 date-time such as 2025-01-31T00:00:00Z")
    return value


# A point in time: ISO 8601 (naive means UTC), returned as aware UTC.
Instant = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_utc_instant)]


def _bad_key(key: object, what: str = "metadata field names") -> str | None:
    if not isinstance(key, str) or not key:
        return f"{what} must be non-empty strings"
    if len(key) > MAX_METADATA_KEY:
        return f"{what} must be at most {MAX_METADATA_KEY} characters"
    if _text_problem(key) or not printable(key):
        return f"{what} must be printable text"
    return None


def _bad_value(
    value: Any, depth: int, what: str = "metadata field names"
) -> tuple[tuple[str | int, ...], str] | None:
    """Where inside ``value`` (a path below it) it breaks the metadata bounds, and how."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if -SAFE_INT <= value <= SAFE_INT:
            return None
        return (), f"integers must be within +-{SAFE_INT}"
    if isinstance(value, float):
        return None if math.isfinite(value) else ((), "numbers must be finite")
    if isinstance(value, str):
        if len(value) > MAX_METADATA_TEXT:
            return (), f"text must be at most {MAX_METADATA_TEXT} characters"
        problem = _text_problem(value)
        return ((), f"text {problem}") if problem else None
    if not isinstance(value, dict | list):
        return (), "values must be text, numbers, booleans, null, lists or objects"
    if depth >= MAX_METADATA_DEPTH:
        return (), f"lists and objects must nest at most {MAX_METADATA_DEPTH} deep"
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(value, dict) and (problem := _bad_key(key, what)):
            return (), problem
        found = _bad_value(item, depth + 1, what)
        if found:
            return (key, *found[0]), found[1]
    return None


def object_problem(value: dict[str, Any], what: str) -> tuple[tuple[str | int, ...], str] | None:
    """Where an object of free-form values (metadata, guard options) breaks the metadata
    bounds of its names, values and nesting, and how; None when it does not."""
    for key, item in value.items():
        if problem := _bad_key(key, what):
            return (key,), problem
        found = _bad_value(item, 0, what)
        if found:
            return (key, *found[0]), found[1]
    return None


def check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """Metadata within the bounds of ``tollway.bounds``: it is journaled with every call
    and audited as JSON, so every value must serialize, and cheaply."""
    if len(value) > MAX_METADATA_FIELDS:
        raise ValueError(f"at most {MAX_METADATA_FIELDS} metadata fields")
    for key, item in value.items():
        if problem := _bad_key(key):
            raise ValueError(problem)
        found = _bad_value(item, 0)
        if found:
            # ``within`` extends the error's location below the field (see admin/app.py).
            path, problem = found
            raise PydanticCustomError("metadata", problem, {"within": (key, *path)})
    if len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON")
    return value


def metadata_schema(schema: JsonDict) -> None:
    """The metadata bounds JSON Schema can state; the rest are in the description."""
    branches = schema.get("anyOf")
    for branch in branches if isinstance(branches, list) else []:
        if isinstance(branch, dict) and branch.get("type") == "object":
            branch["maxProperties"] = MAX_METADATA_FIELDS
            branch["propertyNames"] = {
                "minLength": 1,
                "maxLength": MAX_METADATA_KEY,
                "pattern": _PRINTABLE,
            }
