"""The ``database_pool`` section: how many PostgreSQL connections each gateway process
keeps, and whether they go through a transaction-pooling proxy such as PgBouncer.

Every worker process of every host has a pool of its own, so the most connections a
deployment opens is ``hosts x workers x (size + max_overflow)`` (plus one per running
``tollway migrate``); keep that under the server's ``max_connections``, or put PgBouncer
in front and set ``prepared_statements: false``. SQLite ignores this section.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CONNECT_TIMEOUT = 5.0  # seconds to open a connection
COMMAND_TIMEOUT = 30.0  # seconds one statement may run


class DatabasePool(BaseModel):
    """PostgreSQL connections of one gateway process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(10, ge=1, le=1000, description="Connections each worker process keeps open.")
    max_overflow: int = Field(
        20,
        ge=0,
        le=1000,
        description="Connections a worker may open beyond `size` under a burst (closed again "
        "when returned).",
    )
    timeout: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Seconds a call waits for a free connection before the database counts "
        "as unavailable.",
    )
    prepared_statements: bool = Field(
        True,
        description="Keep prepared statements on each connection. Set false behind PgBouncer "
        "(or another pooler) in transaction or statement pooling mode.",
    )


def _unnamed() -> str:
    return ""


def engine_options(pool: DatabasePool) -> dict[str, Any]:
    """``create_async_engine`` arguments for PostgreSQL (asyncpg) with this pool."""
    # Short connect and command timeouts: an unreachable or hung database must turn into
    # a clear 503 (or a journaled record waiting) within seconds, not a hung request.
    connect_args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT, "command_timeout": COMMAND_TIMEOUT}
    if not pool.prepared_statements:
        # A transaction pooler gives each transaction whichever server connection is free,
        # so a statement prepared on one is unknown (or another one) on the next. With
        # both statement caches off and unnamed statements, asyncpg parses each statement
        # again in the same round trip that runs it, so nothing outlives one transaction:
        # https://magicstack.github.io/asyncpg/current/faq.html#why-am-i-getting-prepared-statement-errors
        # https://docs.sqlalchemy.org/en/20/dialects/postgresql.html#prepared-statement-name-with-pgbouncer
        connect_args |= {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _unnamed,
        }
    return {
        "pool_size": pool.size,
        "max_overflow": pool.max_overflow,
        "pool_timeout": pool.timeout,
        "pool_pre_ping": True,
        "connect_args": connect_args,
    }
