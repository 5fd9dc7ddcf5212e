"""Shape checks for request bodies: wrong types become a 400 naming the field.

Only the fields the gateway relies on (or that would otherwise turn into an upstream 500)
are checked; everything else passes through to the provider untouched. Whatever is
journaled, reserved on or forwarded is bounded here (``bounds.py``): the model name's
length and characters, and every size a budget hold is computed from.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.bounds import INT64_MAX, MAX_MODEL_NAME, printable
from tollway.errors import BadRequest

Payload = dict[str, Any]


def parse_object(body: bytes) -> Payload:
    """Parse a JSON object body, or raise a 400 saying what is wrong."""
    if not body:
        raise BadRequest("Request body is empty; expected a JSON object.")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("Request body must be a JSON object.")
    return payload


def model_name(payload: Payload) -> str:
    """The required ``model`` field."""
    value = payload.get("model")
    if value is None:
        raise BadRequest("Missing required field 'model'.", param="model")
    if not isinstance(value, str) or not value:
        raise BadRequest("Field 'model' must be a non-empty string.", param="model")
    if len(value) > MAX_MODEL_NAME:
        raise BadRequest(
            f"Field 'model' must be at most {MAX_MODEL_NAME} characters.", param="model"
        )
    if not printable(value):
        raise BadRequest("Field 'model' must not contain control characters.", param="model")
    return value


def optional_bool(payload: Payload, field: str) -> bool:
    """A boolean field that defaults to false."""
    value = payload.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"Field '{field}' must be a boolean.", param=field)
    return value


def optional_int(
    payload: Payload, field: str, minimum: int = 0, maximum: int = INT64_MAX
) -> int | None:
    """An integer field within bounds."""
    value = payload.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"Field '{field}' must be an integer.", param=field)
    if value < minimum:
        raise BadRequest(f"Field '{field}' must be at least {minimum}.", param=field)
    if value > maximum:
        raise BadRequest(f"Field '{field}' must be at most {maximum}.", param=field)
    return value


def optional_number(payload: Payload, field: str) -> None:
    """A numeric field such as temperature."""
    value = payload.get(field)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise BadRequest(f"Field '{field}' must be a number.", param=field)


def optional_object(payload: Payload, field: str) -> None:
    """A field that must be a JSON object when present."""
    value = payload.get(field)
    if value is not None and not isinstance(value, dict):
        raise BadRequest(f"Field '{field}' must be an object.", param=field)


def message_list(payload: Payload, field: str = "messages") -> list[Any]:
    """A required, non-empty list of message objects, each with a string role."""
    value = payload.get(field)
    if value is None:
        raise BadRequest(f"Missing required field '{field}'.", param=field)
    if not isinstance(value, list):
        raise BadRequest(f"Field '{field}' must be an array.", param=field)
    if not value:
        raise BadRequest(f"Field '{field}' must not be empty.", param=field)
    for index, message in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(message, dict):
            raise BadRequest(f"'{where}' must be an object.", param=where)
        role = message.get("role")
        if not isinstance(role, str):
            raise BadRequest(f"'{where}.role' must be a string.", param=f"{where}.role")
    return value


def text_or_list(payload: Payload, field: str, required: bool) -> None:
    """A field holding a string or an array (prompts, embedding inputs)."""
    value = payload.get(field)
    if value is None:
        if required:
            raise BadRequest(f"Missing required field '{field}'.", param=field)
        return
    if not isinstance(value, str | list):
        raise BadRequest(f"Field '{field}' must be a string or an array.", param=field)


def optional_strings(payload: Payload, field: str) -> None:
    """A field that must be an array of strings when present (stop sequences)."""
    value = payload.get(field)
    if value is not None and (
        not isinstance(value, list) or not all(isinstance(item, str) for item in value)
    ):
        raise BadRequest(f"Field '{field}' must be an array of strings.", param=field)
