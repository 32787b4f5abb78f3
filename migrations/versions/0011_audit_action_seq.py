"""audit rows by action in chain order: the "what changed" feed reads only its actions

The feed (console.monitoring.changes) asks for a handful of actions, newest first, keyset-paged
by ``seq``. With (action, seq) it reads only those rows however large the log grows. The
composite index serves lookups by action alone too, so it replaces that one.

Revision ID: 0011_audit_action_seq
Revises: 0010_flow_approvals
Create Date: 2026-12-07
"""

from alembic import op

revision = "0011_audit_action_seq"
down_revision = "0010_flow_approvals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_event_action_seq", "audit_event", ["action", "seq"], unique=False)
    op.drop_index("ix_audit_event_action", table_name="audit_event")


def downgrade() -> None:
    op.create_index("ix_audit_event_action", "audit_event", ["action"], unique=False)
    op.drop_index("ix_audit_event_action_seq", table_name="audit_event")
