"""The response cache: identical requests in one scope get the answer already given.

    key.py              cache_key(scope, endpoint, payload): exact match, or None
    directives.py       cache_directives(headers): the client's Cache-Control
    entry.py            Entry: one answer, replayable whole or streamed
    chat_stream.py      \\
    responses_stream.py  > per dialect: whole body <-> client stream events
    messages_stream.py  /
    codec.py            entries as compact bytes (Redis)
    store.py            CacheStore: MemoryCache (LRU by bytes), RedisCache
    wire.py             AnswerRecorder (capture an answer as sent), send_entry (answer again)
"""

from tollway.cache.directives import cache_directives
from tollway.cache.entry import Entry, Tokens, from_body, from_stream
from tollway.cache.key import cache_key
from tollway.cache.store import CacheStore, MemoryCache, RedisCache
from tollway.cache.wire import AnswerRecorder, send_entry

__all__ = [
    "AnswerRecorder",
    "CacheStore",
    "Entry",
    "MemoryCache",
    "RedisCache",
    "Tokens",
    "cache_directives",
    "cache_key",
    "from_body",
    "from_stream",
    "send_entry",
]
