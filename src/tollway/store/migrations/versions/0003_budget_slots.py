"""budget slots

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_slots",
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", sa.String(length=10), nullable=False),
        sa.Column("spent_nano", sa.BigInteger(), nullable=False),
        sa.Column("held_nano", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "owner_id", "period_start"),
    )


def downgrade() -> None:
    op.drop_table("budget_slots")
