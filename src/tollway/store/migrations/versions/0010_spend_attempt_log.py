"""spend records list every upstream attempt: deployment, outcome, status, latency

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a default: a plain ALTER TABLE on SQLite and Postgres
    # alike, no table copy (rows written before it keep only their count of attempts).
    op.add_column("spend", sa.Column("attempt_log", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), as 0007 does: no copy of a large table.
    op.drop_column("spend", "attempt_log")
