"""budget holds with an owner and an expiry, a spend quarantine, spend flags

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_holds",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("period_start", sa.String(length=10), nullable=False),
        sa.Column("nano", sa.BigInteger(), nullable=False),
        sa.Column("instance", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "kind"),
    )
    op.create_index("ix_budget_holds_instance", "budget_holds", ["instance"])
    op.create_index("ix_budget_holds_expires_at", "budget_holds", ["expires_at"])
    op.create_table(
        "spend_quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("spend", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flags", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("spend", schema=None) as batch_op:
        batch_op.drop_column("flags")
    op.drop_table("spend_quarantine")
    op.drop_index("ix_budget_holds_expires_at", table_name="budget_holds")
    op.drop_index("ix_budget_holds_instance", table_name="budget_holds")
    op.drop_table("budget_holds")
