"""request log: each call's user agent; hourly and daily spend rollups (filled from the
spend rows already there); captured bodies; the projects' capture policy

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

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


def _fill(span: int, dialect: str) -> str:
    dimensions = ", ".join(f"COALESCE({name}, '')" for name in _DIMENSIONS)
    bucket = _bucket(span, dialect)
    return (
        f"INSERT INTO spend_rollups (span, bucket, {', '.join(_DIMENSIONS)}, "  # noqa: S608
        f"{', '.join(_SUMS)}) SELECT {span}, {bucket}, {dimensions}, {', '.join(_SUMMED)} "
        f"FROM spend GROUP BY {bucket}, {dimensions}"
    )


def upgrade() -> None:
    with op.batch_alter_table("spend", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_agent", sa.String(length=300), nullable=True))
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capture", sa.JSON(), nullable=True))
    op.create_table(
        "spend_rollups",
        sa.Column("span", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=80), nullable=False),
        sa.Column("endpoint", sa.String(length=40), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS),
        sa.PrimaryKeyConstraint("span", "bucket", *_DIMENSIONS),
        sqlite_with_rowid=False,
    )
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
    dialect = op.get_bind().dialect.name
    for span in (3600, 86400):
        op.execute(_fill(span, dialect))


def downgrade() -> None:
    op.drop_index("ix_request_bodies_ts", table_name="request_bodies")
    op.drop_table("request_bodies")
    op.drop_index("ix_spend_rollups_project", table_name="spend_rollups")
    op.drop_index("ix_spend_rollups_key", table_name="spend_rollups")
    op.drop_table("spend_rollups")
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy: copying ``projects`` would drop
    # a table the keys' foreign keys point at (see 0007).
    op.drop_column("projects", "capture")
    op.drop_column("spend", "user_agent")
