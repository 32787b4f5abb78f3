"""four-eyes key and credential actions

``key_action_request``: with KEY_ACTIONS_REQUIRE_SECOND_APPROVER (on by default in production),
a create, rotate, retire or revoke of a webhook secret, card-data key or inventory credential
waits here for a second person (one pending request per subject, a partial UNIQUE index).

Revision ID: 0016_key_action_approvals
Revises: 0015_metric_totals
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_key_action_approvals"
down_revision = "0015_metric_totals"
branch_labels = None
depends_on = None

ACTIONS = ("webhook_secret.add", "inventory.record_configured", "credential.activate",
           "credential.schedule_retire", "credential.retire", "credential.revoke",
           "card_data.generate", "card_data.activate", "card_data.retire", "card_data.revoke")


def upgrade() -> None:
    op.create_table(
        'key_action_request',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                  nullable=False),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('subject', sa.String(length=120), nullable=False),
        sa.Column('environment', sa.String(length=20), nullable=False),
        sa.Column('params', sa.Text(), nullable=False),
        sa.Column('summary', sa.String(length=300), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('decided_by', sa.String(length=200), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'cancelled', 'expired')",
                           name=op.f('ck_key_action_request_status_known')),
        sa.CheckConstraint("(status = 'pending') = (decided_at IS NULL)",
                           name=op.f('ck_key_action_request_decided_unless_pending')),
        sa.CheckConstraint('(decided_by IS NULL) = (decided_at IS NULL)',
                           name=op.f('ck_key_action_request_decided_by_with_at')),
        sa.CheckConstraint('expires_at > requested_at',
                           name=op.f('ck_key_action_request_expires_after_request')),
        sa.CheckConstraint("action IN (" + ", ".join(repr(a) for a in ACTIONS) + ")",
                           name=op.f('ck_key_action_request_action_known')),
        sa.CheckConstraint("environment IN ('sandbox', 'production')",
                           name=op.f('ck_key_action_request_environment_known')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_key_action_request')),
    )
    with op.batch_alter_table('key_action_request', schema=None) as batch_op:
        batch_op.create_index('ix_key_action_request_status_expires', ['status', 'expires_at'],
                              unique=False)
        batch_op.create_index('uq_key_action_request_pending_subject', ['subject'], unique=True,
                              sqlite_where=sa.text("status = 'pending'"),
                              postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    with op.batch_alter_table('key_action_request', schema=None) as batch_op:
        batch_op.drop_index('uq_key_action_request_pending_subject',
                            sqlite_where=sa.text("status = 'pending'"),
                            postgresql_where=sa.text("status = 'pending'"))
        batch_op.drop_index('ix_key_action_request_status_expires')
    op.drop_table('key_action_request')
