"""health-check results and alert state

``health_check_result``: one row per run of a check (status, duration, detail), read newest
first per check for the health page's sparkline. ``health_check_state``: one row per check with
its consecutive failures, whether an alert is open, when it was last notified and any snooze
(which always carries an expiry, a reason and an author).

Revision ID: 0012_health_checks
Revises: 0011_audit_action_seq
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_health_checks"
down_revision = "0011_audit_action_seq"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('health_check_result',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('check_id', sa.String(length=40), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('detail', sa.String(length=500), nullable=False),
    sa.CheckConstraint("status IN ('ok', 'failing', 'skipped')", name=op.f('ck_health_check_result_status_known')),
    sa.CheckConstraint('duration_ms >= 0', name=op.f('ck_health_check_result_duration_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_health_check_result'))
    )
    with op.batch_alter_table('health_check_result', schema=None) as batch_op:
        batch_op.create_index('ix_health_check_result_check_started', ['check_id', 'started_at'], unique=False)

    op.create_table('health_check_state',
    sa.Column('check_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('alerting', sa.Boolean(), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('snoozed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('snooze_reason', sa.String(length=500), nullable=True),
    sa.Column('snoozed_by', sa.String(length=200), nullable=True),
    sa.CheckConstraint("status IN ('ok', 'failing', 'skipped')", name=op.f('ck_health_check_state_status_known')),
    sa.CheckConstraint('consecutive_failures >= 0', name=op.f('ck_health_check_state_failures_positive')),
    sa.CheckConstraint('(snoozed_until IS NULL) = (snooze_reason IS NULL) AND (snoozed_until IS NULL) = (snoozed_by IS NULL)', name=op.f('ck_health_check_state_snooze_complete')),
    sa.PrimaryKeyConstraint('check_id', name=op.f('pk_health_check_state'))
    )


def downgrade() -> None:
    op.drop_table('health_check_state')
    with op.batch_alter_table('health_check_result', schema=None) as batch_op:
        batch_op.drop_index('ix_health_check_result_check_started')
    op.drop_table('health_check_result')
