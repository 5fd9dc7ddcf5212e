"""kill switches (and their epoch), project and key policies: model scope of projects,
guards, CORS origins, cache; each call's guard decisions in its spend record

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "switches",
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(length=80), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(
        sa.table("epochs", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
        [{"name": "switches", "value": 0}],
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("models", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("guards", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("cors_origins", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("cache", sa.JSON(), nullable=True))
    with op.batch_alter_table("keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guards", sa.JSON(), nullable=True))
    with op.batch_alter_table("spend", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guards", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy: copying ``projects`` would drop
    # a table the keys' foreign keys point at, which SQLite refuses while they exist.
    op.drop_column("spend", "guards")
    op.drop_column("keys", "guards")
    for column in ("cache", "cors_origins", "guards", "models"):
        op.drop_column("projects", column)
    op.execute("DELETE FROM epochs WHERE name = 'switches'")
    op.drop_table("switches")
