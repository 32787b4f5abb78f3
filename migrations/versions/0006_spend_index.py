"""card transactions by card and last change: spend limits count unheld presentments

Revision ID: 0006_spend_index
Revises: 0005_lifecycle
Create Date: 2026-11-27
"""

from alembic import op

revision = "0006_spend_index"
down_revision = "0005_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The composite index serves lookups by card_id alone too, so it replaces that one.
    op.create_index("ix_card_transaction_card_updated", "card_transaction",
                    ["card_id", "updated_at"], unique=False)
    op.drop_index("ix_card_transaction_card_id", table_name="card_transaction")


def downgrade() -> None:
    op.create_index("ix_card_transaction_card_id", "card_transaction", ["card_id"],
                    unique=False)
    op.drop_index("ix_card_transaction_card_updated", table_name="card_transaction")
