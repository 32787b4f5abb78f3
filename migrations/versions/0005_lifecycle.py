"""lifecycle: transactions, their messages and postings; card status history and card actions

Revision ID: 0005_lifecycle
Revises: 0004_decisioning
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_lifecycle"
down_revision = "0004_decisioning"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('card_action',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=False),
    sa.Column('target_status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'refused')", name=op.f('ck_card_action_status_known')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_card_action_attempts_not_negative')),
    sa.ForeignKeyConstraint(['card_id'], ['card.id'], name=op.f('fk_card_action_card_id_card')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_action'))
    )
    op.create_index(op.f('ix_card_action_card_id'), 'card_action', ['card_id'], unique=False)
    op.create_index('ix_card_action_due', 'card_action', ['status', 'next_attempt_at'], unique=False)
    op.create_table('card_transaction',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('link_key', sa.String(length=220), nullable=False),
    sa.Column('authorization_id', sa.String(length=200), nullable=True),
    sa.Column('token_id', sa.String(length=64), nullable=True),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('merchant_name', sa.String(length=200), nullable=True),
    sa.Column('mcc', sa.String(length=4), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('has_request', sa.Boolean(), nullable=False),
    sa.Column('has_advice', sa.Boolean(), nullable=False),
    sa.Column('awaiting_authorization', sa.Boolean(), nullable=False),
    sa.Column('response_code', sa.String(length=64), nullable=True),
    sa.Column('authorized_amount', sa.BigInteger(), nullable=False),
    sa.Column('reversed_amount', sa.BigInteger(), nullable=False),
    sa.Column('cleared_amount', sa.BigInteger(), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger(), nullable=False),
    sa.Column('failed_postings', sa.Integer(), nullable=False),
    sa.Column('first_event_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('authorized_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('requested', 'approved', 'declined', 'reversed', 'expired', 'cleared', 'posted', 'refunded')", name=op.f('ck_card_transaction_state_known')),
    sa.CheckConstraint('authorized_amount >= 0 AND reversed_amount >= 0 AND cleared_amount >= 0 AND refunded_amount >= 0', name=op.f('ck_card_transaction_amounts_not_negative')),
    sa.ForeignKeyConstraint(['card_id'], ['card.id'], name=op.f('fk_card_transaction_card_id_card')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_transaction')),
    sa.UniqueConstraint('link_key', name=op.f('uq_card_transaction_link_key'))
    )
    op.create_index('ix_card_transaction_amount_first', 'card_transaction', ['authorized_amount', 'first_event_at'], unique=False)
    op.create_index(op.f('ix_card_transaction_authorization_id'), 'card_transaction', ['authorization_id'], unique=False)
    op.create_index(op.f('ix_card_transaction_awaiting_authorization'), 'card_transaction', ['awaiting_authorization'], unique=False)
    op.create_index(op.f('ix_card_transaction_card_id'), 'card_transaction', ['card_id'], unique=False)
    op.create_index('ix_card_transaction_cleared_first', 'card_transaction', ['cleared_amount', 'first_event_at'], unique=False)
    op.create_index(op.f('ix_card_transaction_failed_postings'), 'card_transaction', ['failed_postings'], unique=False)
    op.create_index(op.f('ix_card_transaction_first_event_at'), 'card_transaction', ['first_event_at'], unique=False)
    op.create_index(op.f('ix_card_transaction_state'), 'card_transaction', ['state'], unique=False)
    op.create_index(op.f('ix_card_transaction_token_id'), 'card_transaction', ['token_id'], unique=False)
    op.create_table('card_status_change',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('token_id', sa.String(length=64), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('stage', sa.String(length=24), nullable=True),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('action_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied', sa.Boolean(), nullable=False),
    sa.Column('modelled', sa.Boolean(), nullable=False),
    sa.CheckConstraint("source IN ('webhook', 'operator', 'refresh')", name=op.f('ck_card_status_change_source_known')),
    sa.ForeignKeyConstraint(['action_id'], ['card_action.id'], name=op.f('fk_card_status_change_action_id_card_action')),
    sa.ForeignKeyConstraint(['card_id'], ['card.id'], name=op.f('fk_card_status_change_card_id_card')),
    sa.ForeignKeyConstraint(['message_id'], ['webhook_message.id'], name=op.f('fk_card_status_change_message_id_webhook_message')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_status_change')),
    sa.UniqueConstraint('action_id', name=op.f('uq_card_status_change_action_id')),
    sa.UniqueConstraint('message_id', name=op.f('uq_card_status_change_message_id'))
    )
    op.create_index(op.f('ix_card_status_change_card_id'), 'card_status_change', ['card_id'], unique=False)
    op.create_index('ix_card_status_change_token_occurred', 'card_status_change', ['token_id', 'occurred_at'], unique=False)
    op.create_table('transaction_message',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('role', sa.String(length=12), nullable=False),
    sa.Column('finci_id', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('response_code', sa.String(length=64), nullable=True),
    sa.Column('finci_created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('request', 'advice', 'reversal', 'presentment', 'refund')", name=op.f('ck_transaction_message_role_known')),
    sa.ForeignKeyConstraint(['message_id'], ['webhook_message.id'], name=op.f('fk_transaction_message_message_id_webhook_message')),
    sa.ForeignKeyConstraint(['transaction_id'], ['card_transaction.id'], name=op.f('fk_transaction_message_transaction_id_card_transaction')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transaction_message')),
    sa.UniqueConstraint('message_id', name=op.f('uq_transaction_message_message_id'))
    )
    op.create_index(op.f('ix_transaction_message_finci_id'), 'transaction_message', ['finci_id'], unique=False)
    op.create_index(op.f('ix_transaction_message_transaction_id'), 'transaction_message', ['transaction_id'], unique=False)
    op.create_table('transaction_posting',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('finci_id', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=True),
    sa.Column('detail', sa.String(length=300), nullable=False),
    sa.Column('journal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('accepted_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(status = 'failed') = (reason IS NOT NULL)", name=op.f('ck_transaction_posting_failed_has_reason')),
    sa.CheckConstraint("(status = 'posted') = (journal_id IS NOT NULL)", name=op.f('ck_transaction_posting_posted_has_journal')),
    sa.CheckConstraint("kind IN ('presentment', 'refund')", name=op.f('ck_transaction_posting_kind_known')),
    sa.CheckConstraint("reason IS NULL OR reason IN ('unknown_card', 'unknown_account', 'currency_mismatch', 'over_hold', 'account_closed')", name=op.f('ck_transaction_posting_reason_known')),
    sa.CheckConstraint("status IN ('parked', 'posted', 'failed', 'skipped')", name=op.f('ck_transaction_posting_status_known')),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_transaction_posting_amount_not_negative')),
    sa.ForeignKeyConstraint(['journal_id'], ['ledger_journal.id'], name=op.f('fk_transaction_posting_journal_id_ledger_journal')),
    sa.ForeignKeyConstraint(['message_id'], ['webhook_message.id'], name=op.f('fk_transaction_posting_message_id_webhook_message')),
    sa.ForeignKeyConstraint(['transaction_id'], ['card_transaction.id'], name=op.f('fk_transaction_posting_transaction_id_card_transaction')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transaction_posting')),
    sa.UniqueConstraint('message_id', name=op.f('uq_transaction_posting_message_id'))
    )
    op.create_index('ix_transaction_posting_status_reason', 'transaction_posting', ['status', 'reason'], unique=False)
    op.create_index(op.f('ix_transaction_posting_transaction_id'), 'transaction_posting', ['transaction_id'], unique=False)
    with op.batch_alter_table('card') as batch:
        batch.add_column(sa.Column('status_as_of', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('ledger_account') as batch:
        batch.add_column(sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ledger_account') as batch:
        batch.drop_column('closed_at')
    with op.batch_alter_table('card') as batch:
        batch.drop_column('refreshed_at')
        batch.drop_column('status_as_of')
    op.drop_index(op.f('ix_transaction_posting_transaction_id'), table_name='transaction_posting')
    op.drop_index('ix_transaction_posting_status_reason', table_name='transaction_posting')
    op.drop_table('transaction_posting')
    op.drop_index(op.f('ix_transaction_message_transaction_id'), table_name='transaction_message')
    op.drop_index(op.f('ix_transaction_message_finci_id'), table_name='transaction_message')
    op.drop_table('transaction_message')
    op.drop_index('ix_card_status_change_token_occurred', table_name='card_status_change')
    op.drop_index(op.f('ix_card_status_change_card_id'), table_name='card_status_change')
    op.drop_table('card_status_change')
    op.drop_index(op.f('ix_card_transaction_token_id'), table_name='card_transaction')
    op.drop_index(op.f('ix_card_transaction_state'), table_name='card_transaction')
    op.drop_index(op.f('ix_card_transaction_first_event_at'), table_name='card_transaction')
    op.drop_index(op.f('ix_card_transaction_failed_postings'), table_name='card_transaction')
    op.drop_index('ix_card_transaction_cleared_first', table_name='card_transaction')
    op.drop_index(op.f('ix_card_transaction_card_id'), table_name='card_transaction')
    op.drop_index(op.f('ix_card_transaction_awaiting_authorization'), table_name='card_transaction')
    op.drop_index(op.f('ix_card_transaction_authorization_id'), table_name='card_transaction')
    op.drop_index('ix_card_transaction_amount_first', table_name='card_transaction')
    op.drop_table('card_transaction')
    op.drop_index('ix_card_action_due', table_name='card_action')
    op.drop_index(op.f('ix_card_action_card_id'), table_name='card_action')
    op.drop_table('card_action')
