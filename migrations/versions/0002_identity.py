"""identity and access: users, server-side sessions, break-glass accounts (issue 3)

Revision ID: 0002_identity
Revises: 0001_foundation
Create Date: 2026-11-27
"""

revision = "0002_identity"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
