"""anonymous denials counted per (minute, source, permission, status) and audited in batches

An anonymous API call or write was audited one row each, so a flood of them grew the append-only
audit log by a row per request. They are now counted (one upsert) and the scheduler writes one
audit row per run for everything counted since (``auth.anonymous_denials``).

Revision ID: 0009_anonymous_denials
Revises: 0008_rejection_counts
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_anonymous_denials"
down_revision = "0008_rejection_counts"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'anonymous_denial',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source_ip', sa.String(length=45), nullable=False),
        sa.Column('permission', sa.String(length=40), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('audited_count', sa.Integer(), nullable=False),
        sa.Column('pending', sa.Boolean(), nullable=False),
        sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('method', sa.String(length=10), nullable=True),
        sa.Column('path', sa.String(length=300), nullable=True),
        sa.CheckConstraint('audited_count >= 0 AND audited_count <= count',
                           name=op.f('ck_anonymous_denial_audited_within_count')),
        sa.CheckConstraint('count > 0', name=op.f('ck_anonymous_denial_count_positive')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_anonymous_denial')),
        sa.UniqueConstraint('minute', 'source_ip', 'permission', 'status',
                            name=op.f('uq_anonymous_denial_minute_source_ip_permission_status')),
    )
    with op.batch_alter_table('anonymous_denial', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_anonymous_denial_pending'), ['pending'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('anonymous_denial', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_anonymous_denial_pending'))
    op.drop_table('anonymous_denial')
