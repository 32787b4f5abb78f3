"""four-eyes requests for kill switches, the auto-revert warning mark, blast-radius indexes

``flow_change_request``: a change to a flow under FLOWS_REQUIRE_APPROVAL waits here for a second
person (one pending request per flow, a partial UNIQUE index). ``flow_switch`` records who
approved the change and when the scheduler warned that its auto-revert is near. The kill switch
page counts the last hour's postings and card actions, so their timestamps get an index.

Revision ID: 0010_flow_approvals
Revises: 0009_anonymous_denials
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_flow_approvals"
down_revision = "0009_anonymous_denials"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('flow_change_request',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('flow', sa.String(length=40), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('revert_minutes', sa.Integer(), nullable=True),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(status = 'pending') = (decided_at IS NULL)", name=op.f('ck_flow_change_request_decided_unless_pending')),
    sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'cancelled', 'expired')", name=op.f('ck_flow_change_request_status_known')),
    sa.CheckConstraint('(decided_by IS NULL) = (decided_at IS NULL)', name=op.f('ck_flow_change_request_decided_by_with_at')),
    sa.CheckConstraint('expires_at > requested_at', name=op.f('ck_flow_change_request_expires_after_request')),
    sa.CheckConstraint('revert_minutes IS NULL OR revert_minutes > 0', name=op.f('ck_flow_change_request_revert_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow_change_request'))
    )
    with op.batch_alter_table('flow_change_request', schema=None) as batch_op:
        batch_op.create_index('ix_flow_change_request_status_expires', ['status', 'expires_at'], unique=False)
        batch_op.create_index('uq_flow_change_request_pending_flow', ['flow'], unique=True, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))

    with op.batch_alter_table('card_action', schema=None) as batch_op:
        batch_op.create_index('ix_card_action_requested_at', ['requested_at'], unique=False)

    with op.batch_alter_table('flow_switch', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approved_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('revert_warned_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('transaction_posting', schema=None) as batch_op:
        batch_op.create_index('ix_transaction_posting_created_at', ['created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('transaction_posting', schema=None) as batch_op:
        batch_op.drop_index('ix_transaction_posting_created_at')

    with op.batch_alter_table('flow_switch', schema=None) as batch_op:
        batch_op.drop_column('revert_warned_at')
        batch_op.drop_column('approved_by')

    with op.batch_alter_table('card_action', schema=None) as batch_op:
        batch_op.drop_index('ix_card_action_requested_at')

    with op.batch_alter_table('flow_change_request', schema=None) as batch_op:
        batch_op.drop_index('uq_flow_change_request_pending_flow', sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
        batch_op.drop_index('ix_flow_change_request_status_expires')

    op.drop_table('flow_change_request')
