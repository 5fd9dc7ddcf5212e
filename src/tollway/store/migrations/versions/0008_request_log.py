"""request log: each call's user agent; hourly and daily spend rollups and their
metadata sets (filled from the spend rows already there); running totals (built by the
gateway); captured bodies; the projects' capture policy

Revision ID: 0008
Revises: 0007
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_WEEK = timedelta(days=7)
_DIMENSIONS = ("key_id", "project_id", "model", "provider", "endpoint")
_SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_pico",
    "unpriced_requests",
    "estimated_requests",
    "error_requests",
)
_RUNNING = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_pico",
    "unpriced_requests",
    "estimated_requests",
)
# Each sum over the spend rows, in the order of _SUMS.
_SUMMED = (
    "COUNT(*)",
    "SUM(input_tokens)",
    "SUM(output_tokens)",
    "SUM(cache_read_tokens)",
    "SUM(cache_write_tokens)",
    "SUM(reasoning_tokens)",
    "SUM(cost_pico)",
    "SUM(CASE WHEN priced THEN 0 ELSE 1 END)",
    "SUM(CASE WHEN estimated THEN 1 ELSE 0 END)",
    "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)",
)


def _bucket(span: int, dialect: str) -> str:
    """The start of the span holding ``ts``, in UNIX seconds. SQLite keeps ``ts`` as
    'YYYY-MM-DD HH:MM:SS.ffffff' UTC text; its own time functions round fractions of a
    second, so the hour is cut from the text instead."""
    if dialect == "sqlite":
        hour = "CAST(strftime('%s', substr(ts, 1, 13) || ':00:00') AS INTEGER)"
        return hour if span == 3600 else f"({hour} / {span}) * {span}"
    return f"(FLOOR(EXTRACT(EPOCH FROM ts) / {span}) * {span})::BIGINT"


def _text(column: str, dialect: str) -> str:
    return column if dialect == "sqlite" else f"CAST({column} AS TEXT)"


def _sets(dialect: str) -> str:
    """Each distinct metadata text of the rows in [:since, :until) not kept yet, once.
    Without a digest: the writer never finds these again and keeps sets of its own for
    later calls (same content, another id: reports read the fields, so both add up to
    the same group)."""
    text = _text("metadata", dialect)
    value = "metadata" if dialect == "sqlite" else "CAST(metadata AS JSON)"
    return (
        f"INSERT INTO spend_metadata (metadata) SELECT {value} FROM "  # noqa: S608
        f"(SELECT DISTINCT {text} AS metadata FROM spend WHERE ts >= :since AND ts < :until "
        f"AND metadata IS NOT NULL AND {text} NOT IN ('{{}}', 'null')) AS sets "
        f"WHERE NOT EXISTS (SELECT 1 FROM spend_metadata AS known "
        f"WHERE {_text('known.metadata', dialect)} = sets.metadata)"
    )


def _fill(span: int, dialect: str) -> str:
    """The cells of the rows in [:since, :until) (whole days: no cell is split)."""
    dimensions = ", ".join(f"COALESCE(spend.{name}, '')" for name in _DIMENSIONS)
    bucket = _bucket(span, dialect)
    metadata_id = "COALESCE(sets.id, 0)"
    return (
        f"INSERT INTO spend_rollups (span, bucket, {', '.join(_DIMENSIONS)}, "  # noqa: S608
        f"metadata_id, {', '.join(_SUMS)}) "
        f"SELECT {span}, {bucket}, {dimensions}, {metadata_id}, {', '.join(_SUMMED)} "
        f"FROM spend LEFT JOIN spend_metadata AS sets "
        f"ON {_text('sets.metadata', dialect)} = {_text('spend.metadata', dialect)} "
        f"WHERE spend.ts >= :since AND spend.ts < :until "
        f"GROUP BY {bucket}, {dimensions}, {metadata_id}"
    )


def _weeks(bind: sa.engine.Connection, dialect: str) -> list[dict[str, Any]]:
    """The rows' time as ranges of whole UTC days, a week each: every statement of the
    fill reads one, so none runs longer than a database's statement timeout allows."""
    first, last = bind.execute(sa.text("SELECT MIN(ts), MAX(ts) FROM spend")).one()
    if first is None:
        return []
    if isinstance(first, str):  # SQLite: UTC text
        first, last = (datetime.fromisoformat(value) for value in (first, last))
    first, last = (
        value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        for value in (first, last)
    )
    start = first.replace(hour=0, minute=0, second=0, microsecond=0)
    ranges = []
    while start <= last:
        since, until = start, start + _WEEK
        if dialect == "sqlite":
            ranges.append({"since": _sqlite_text(since), "until": _sqlite_text(until)})
        else:
            ranges.append({"since": since, "until": until})
        start = until
    return ranges


def _sqlite_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def upgrade() -> None:
    with op.batch_alter_table("spend", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_agent", sa.String(length=300), nullable=True))
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capture", sa.JSON(), nullable=True))
    op.create_table(
        "spend_metadata",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    op.create_table(
        "spend_rollups",
        sa.Column("span", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=80), nullable=False),
        sa.Column("endpoint", sa.String(length=40), nullable=False),
        sa.Column("metadata_id", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS),
        sa.PrimaryKeyConstraint("span", "bucket", *_DIMENSIONS, "metadata_id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "spend_running",
        sa.Column("projection", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _RUNNING),
        sa.PrimaryKeyConstraint("projection", "value", "bucket"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_spend_running_bucket", "spend_running", ["bucket"])
    op.create_table(
        "spend_running_heads",
        sa.Column("projection", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("last_bucket", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _RUNNING),
        sa.PrimaryKeyConstraint("projection", "value"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_spend_running_heads_last", "spend_running_heads", ["projection", "last_bucket"]
    )
    state = op.create_table(
        "spend_running_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("horizon", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # Nothing is compacted yet: the gateway builds the running totals from the rollups.
    op.bulk_insert(state, [{"id": 1, "horizon": 0}])
    op.create_index("ix_spend_rollups_key", "spend_rollups", ["key_id", "span", "bucket"])
    op.create_index("ix_spend_rollups_project", "spend_rollups", ["project_id", "span", "bucket"])
    op.create_table(
        "request_bodies",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_body", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("request_bytes", sa.BigInteger(), nullable=False),
        sa.Column("response_bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_request_bodies_ts", "request_bodies", ["ts"])
    bind = op.get_bind()
    dialect = bind.dialect.name
    for week in _weeks(bind, dialect):
        bind.execute(sa.text(_sets(dialect)), week)
        for span in (3600, 86400):
            bind.execute(sa.text(_fill(span, dialect)), week)


def downgrade() -> None:
    op.drop_index("ix_request_bodies_ts", table_name="request_bodies")
    op.drop_table("request_bodies")
    op.drop_index("ix_spend_rollups_project", table_name="spend_rollups")
    op.drop_index("ix_spend_rollups_key", table_name="spend_rollups")
    op.drop_table("spend_rollups")
    op.drop_table("spend_metadata")
    op.drop_table("spend_running_state")
    op.drop_index("ix_spend_running_heads_last", table_name="spend_running_heads")
    op.drop_table("spend_running_heads")
    op.drop_index("ix_spend_running_bucket", table_name="spend_running")
    op.drop_table("spend_running")
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy: copying ``projects`` would drop
    # a table the keys' foreign keys point at (see 0007).
    op.drop_column("projects", "capture")
    op.drop_column("spend", "user_agent")
