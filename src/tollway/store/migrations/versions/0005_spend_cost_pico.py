"""exact cost sums: spend.cost_pico (integer pico-dollars)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spend", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cost_pico", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.execute("UPDATE spend SET cost_pico = CAST(ROUND(cost_usd * 1000000000000) AS BIGINT)")


def downgrade() -> None:
    with op.batch_alter_table("spend", schema=None) as batch_op:
        batch_op.drop_column("cost_pico")
