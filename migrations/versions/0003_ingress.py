"""webhook ingress and event pipeline: messages, deliveries, rejections, processing (issue 4)

Revision ID: 0003_ingress
Revises: 0002_identity
Create Date: 2026-11-27
"""

revision = "0003_ingress"
down_revision = "0002_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
