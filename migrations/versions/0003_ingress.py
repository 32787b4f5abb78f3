"""webhook ingress and event pipeline: messages, deliveries, rejections, processing (issue 4)

Revision ID: 0003_ingress
Revises: 0002_identity
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_ingress"
down_revision = "0002_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('replay_job',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('criteria', sa.Text(), nullable=False),
    sa.Column('max_message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cursor', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('expected_noops', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'running', 'done', 'cancelled')", name=op.f('ck_replay_job_status_known')),
    sa.CheckConstraint('done <= total', name=op.f('ck_replay_job_progress_bounded')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_replay_job'))
    )
    with op.batch_alter_table('replay_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_replay_job_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_replay_job_status'), ['status'], unique=False)

    op.create_table('webhook_message',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('webhook_id', sa.String(length=256), nullable=False),
    sa.Column('business_key', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('known_type', sa.Boolean(), nullable=False),
    sa.Column('finci_id', sa.String(length=64), nullable=False),
    sa.Column('advice', sa.Boolean(), nullable=True),
    sa.Column('token_id', sa.String(length=64), nullable=True),
    sa.Column('finci_created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('webhook_timestamp', sa.BigInteger(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('body_masked', sa.Boolean(), nullable=False),
    sa.Column('source_ip', sa.String(length=45), nullable=True),
    sa.Column('verified_by', sa.String(length=16), nullable=False),
    sa.Column('answer_status', sa.Integer(), nullable=False),
    sa.Column('answer_body', sa.Text(), nullable=False),
    sa.Column('decision', sa.String(length=10), nullable=True),
    sa.Column('decision_reason', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_token', sa.String(length=32), nullable=True),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('replay_job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'processing', 'processed', 'dead', 'parked')", name=op.f('ck_webhook_message_status_known')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_webhook_message_attempts_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_message')),
    sa.UniqueConstraint('business_key', name=op.f('uq_webhook_message_business_key')),
    sa.UniqueConstraint('webhook_id', name=op.f('uq_webhook_message_webhook_id'))
    )
    with op.batch_alter_table('webhook_message', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_message_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_message_finci_id'), ['finci_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_message_received_at'), ['received_at'], unique=False)

    op.create_table('webhook_rejection',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=48), nullable=False),
    sa.Column('detail', sa.String(length=100), nullable=True),
    sa.Column('http_status', sa.Integer(), nullable=False),
    sa.Column('source_ip', sa.String(length=45), nullable=True),
    sa.Column('peer_ip', sa.String(length=45), nullable=True),
    sa.Column('webhook_id', sa.String(length=256), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_rejection'))
    )
    with op.batch_alter_table('webhook_rejection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_rejection_reason'), ['reason'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_rejection_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_rejection_source_ip'), ['source_ip'], unique=False)

    op.create_table('message_effect',
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('handler', sa.String(length=100), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('summary', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['webhook_message.id'], name=op.f('fk_message_effect_message_id_webhook_message')),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_message_effect'))
    )
    op.create_table('processing_attempt',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('replay_job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("outcome IN ('applied', 'no_handler', 'noop', 'parked', 'failed', 'dead', 'lease_expired', 'released')", name=op.f('ck_processing_attempt_outcome_known')),
    sa.ForeignKeyConstraint(['message_id'], ['webhook_message.id'], name=op.f('fk_processing_attempt_message_id_webhook_message')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_processing_attempt'))
    )
    with op.batch_alter_table('processing_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_processing_attempt_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_processing_attempt_started_at'), ['started_at'], unique=False)

    op.create_table('webhook_delivery',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('webhook_id', sa.String(length=256), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disposition', sa.String(length=10), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('conflict_body', sa.Text(), nullable=True),
    sa.Column('webhook_timestamp', sa.BigInteger(), nullable=False),
    sa.Column('source_ip', sa.String(length=45), nullable=True),
    sa.Column('peer_ip', sa.String(length=45), nullable=True),
    sa.Column('verified_by', sa.String(length=16), nullable=False),
    sa.Column('headers', sa.Text(), nullable=False),
    sa.Column('answer_status', sa.Integer(), nullable=False),
    sa.CheckConstraint("disposition IN ('first', 'duplicate', 'conflict')", name=op.f('ck_webhook_delivery_disposition_known')),
    sa.ForeignKeyConstraint(['message_id'], ['webhook_message.id'], name=op.f('fk_webhook_delivery_message_id_webhook_message')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_delivery'))
    )
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_delivery_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_delivery_received_at'), ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_received_at'))
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_message_id'))

    op.drop_table('webhook_delivery')
    with op.batch_alter_table('processing_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_processing_attempt_started_at'))
        batch_op.drop_index(batch_op.f('ix_processing_attempt_message_id'))

    op.drop_table('processing_attempt')
    op.drop_table('message_effect')
    with op.batch_alter_table('webhook_rejection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_rejection_source_ip'))
        batch_op.drop_index(batch_op.f('ix_webhook_rejection_received_at'))
        batch_op.drop_index(batch_op.f('ix_webhook_rejection_reason'))

    op.drop_table('webhook_rejection')
    with op.batch_alter_table('webhook_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_message_received_at'))
        batch_op.drop_index(batch_op.f('ix_webhook_message_finci_id'))
        batch_op.drop_index('ix_webhook_message_due')

    op.drop_table('webhook_message')
    with op.batch_alter_table('replay_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_replay_job_status'))
        batch_op.drop_index(batch_op.f('ix_replay_job_created_at'))

    op.drop_table('replay_job')
