"""Entries as compact bytes, for stores outside the process (Redis).

    b"twc1" + (b"r" raw | b"z" zlib) + header JSON + b"\\n" + body + event bytes

The header holds the endpoint, status, content type, token counts, creation time and
the length of the body and of each event, so the data itself is stored as is (no JSON
escaping). Stream events repeat their envelope (id, model, type) in every event and
text compresses well: payloads from ``COMPRESS_FROM`` bytes up are deflated (level 1:
fast) when that makes them smaller. Anything that does not decode (another format, a
truncated value, a value larger than the reader's limit) reads as no entry.
"""

from __future__ import annotations

import zlib
from itertools import accumulate, pairwise

import orjson

from tollway.cache.entry import Entry, Tokens
from tollway.dialects.endpoints import Endpoint

MAGIC = b"twc1"
_RAW, _ZLIB = b"r", b"z"
COMPRESS_FROM = 1024
_LEVEL = 1


def encode(entry: Entry) -> bytes:
    """The entry as bytes."""
    events = entry.events
    header = {
        "e": entry.endpoint.value,
        "s": entry.status,
        "t": entry.content_type,
        "u": list(entry.tokens),
        "c": entry.created_at,
        "b": len(entry.body) if entry.body is not None else None,
        "v": [len(event) for event in events] if events is not None else None,
    }
    payload = b"".join([orjson.dumps(header), b"\n", entry.body or b"", *(events or ())])
    if len(payload) >= COMPRESS_FROM:
        packed = zlib.compress(payload, _LEVEL)
        if len(packed) < len(payload):
            return MAGIC + _ZLIB + packed
    return MAGIC + _RAW + payload


def decode(data: bytes, max_bytes: int | None = None) -> Entry | None:
    """The entry ``data`` encodes, or None (also when it holds more than ``max_bytes``)."""
    if data[: len(MAGIC)] != MAGIC:
        return None
    kind, payload = data[len(MAGIC) : len(MAGIC) + 1], data[len(MAGIC) + 1 :]
    try:
        if kind == _ZLIB:
            payload = _inflate(payload, max_bytes)
        elif kind != _RAW:
            return None
        return _entry(payload)
    except (ValueError, TypeError, KeyError, IndexError, zlib.error):
        return None


def _inflate(packed: bytes, max_bytes: int | None) -> bytes:
    """Deflated data, refusing to grow past ``max_bytes`` (plus room for the header)."""
    inflater = zlib.decompressobj()
    limit = 0 if max_bytes is None else max_bytes + 64 * 1024
    payload = inflater.decompress(packed, limit)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("compressed entry is larger than allowed, or truncated")
    return payload


def _entry(payload: bytes) -> Entry:
    end = payload.index(b"\n")
    header = orjson.loads(payload[:end])
    data = memoryview(payload)[end + 1 :]
    body_length, lengths = header["b"], header["v"]
    if any(type(n) is not int or n < 0 for n in [*(lengths or ()), body_length or 0]):
        raise ValueError("entry lengths must be whole numbers")
    body: bytes | None = None
    at = 0
    if body_length is not None:
        body, at = bytes(data[:body_length]), body_length
    events: tuple[bytes, ...] | None = None
    if lengths is not None:
        bounds = list(accumulate(lengths, initial=at))
        events = tuple(bytes(data[start:stop]) for start, stop in pairwise(bounds))
        at = bounds[-1]
    if at != len(data) or (body is None) == (events is None):
        raise ValueError("entry lengths do not match its data")
    counts = header["u"]
    if not isinstance(counts, list) or len(counts) != len(Tokens._fields):
        raise ValueError("entry token counts do not match")
    tokens = Tokens._make([*(int(count) for count in counts[:-1]), bool(counts[-1])])
    return Entry(
        Endpoint(header["e"]),
        tokens,
        float(header["c"]),
        body=body,
        events=events,
        status=int(header["s"]),
        content_type=str(header["t"]),
    )
