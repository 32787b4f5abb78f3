"""decisioning: cards, ledger (accounts, journals, entries, holds), decision records, rule config

Revision ID: 0004_decisioning
Revises: 0003_ingress
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_decisioning"
down_revision = "0003_ingress"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('decisioning_rule_config',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_decisioning_rule_config'))
    )
    op.create_table('ledger_account',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('posted_balance', sa.BigInteger(), nullable=False),
    sa.Column('held_amount', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('customer', 'funding', 'settlement')", name=op.f('ck_ledger_account_kind_known')),
    sa.CheckConstraint('held_amount >= 0', name=op.f('ck_ledger_account_held_not_negative')),
    sa.CheckConstraint('length(currency) = 3', name=op.f('ck_ledger_account_currency_iso')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_account')),
    sa.UniqueConstraint('external_id', name=op.f('uq_ledger_account_external_id'))
    )
    op.create_table('ledger_journal',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('posted_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_journal')),
    sa.UniqueConstraint('reference', name=op.f('uq_ledger_journal_reference'))
    )
    op.create_index(op.f('ix_ledger_journal_kind'), 'ledger_journal', ['kind'], unique=False)
    op.create_index(op.f('ix_ledger_journal_posted_at'), 'ledger_journal', ['posted_at'], unique=False)
    op.create_table('card',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('token_id', sa.String(length=64), nullable=False),
    sa.Column('masked_number', sa.String(length=19), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('stage', sa.String(length=24), nullable=True),
    sa.Column('person_id', sa.String(length=64), nullable=True),
    sa.Column('corporate_id', sa.String(length=64), nullable=True),
    sa.Column('employee_id', sa.String(length=64), nullable=True),
    sa.Column('product_id', sa.String(length=64), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("stage IS NULL OR stage IN ('digital', 'plastic_not_delivered', 'plastic_delivered')", name=op.f('ck_card_stage_known')),
    sa.CheckConstraint("status IN ('new', 'active', 'blocked', 'closed', 'compromized', 'damaged', 'deactivated', 'lost', 'referral', 'stolen')", name=op.f('ck_card_status_known')),
    sa.CheckConstraint('length(currency) = 3', name=op.f('ck_card_currency_iso')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_account.id'], name=op.f('fk_card_account_id_ledger_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card')),
    sa.UniqueConstraint('token_id', name=op.f('uq_card_token_id'))
    )
    op.create_index(op.f('ix_card_account_id'), 'card', ['account_id'], unique=False)
    op.create_index(op.f('ix_card_corporate_id'), 'card', ['corporate_id'], unique=False)
    op.create_index(op.f('ix_card_person_id'), 'card', ['person_id'], unique=False)
    op.create_table('ledger_entry',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('journal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_ledger_entry_amount_not_zero')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_account.id'], name=op.f('fk_ledger_entry_account_id_ledger_account')),
    sa.ForeignKeyConstraint(['journal_id'], ['ledger_journal.id'], name=op.f('fk_ledger_entry_journal_id_ledger_journal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entry'))
    )
    op.create_index('ix_ledger_entry_account_posted', 'ledger_entry', ['account_id', 'id'], unique=False)
    op.create_index(op.f('ix_ledger_entry_journal_id'), 'ledger_entry', ['journal_id'], unique=False)
    op.create_table('decision_record',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('authorization_id', sa.String(length=64), nullable=False),
    sa.Column('origin', sa.String(length=10), nullable=False),
    sa.Column('mode', sa.String(length=12), nullable=False),
    sa.Column('token_id', sa.String(length=64), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('merchant_name', sa.String(length=200), nullable=True),
    sa.Column('mcc', sa.String(length=4), nullable=True),
    sa.Column('merchant_country', sa.String(length=2), nullable=True),
    sa.Column('finci_created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answer', sa.String(length=7), nullable=True),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=False),
    sa.Column('default_used', sa.Boolean(), nullable=False),
    sa.Column('rule_trace', sa.JSON(), nullable=False),
    sa.Column('latency_ms', sa.JSON(), nullable=False),
    sa.Column('total_ms', sa.Float(), nullable=True),
    sa.Column('rule_config_version', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('advice_response_code', sa.String(length=64), nullable=True),
    sa.Column('advice_amount', sa.BigInteger(), nullable=True),
    sa.Column('advice_received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('advice_message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('advice_outcome', sa.String(length=24), nullable=True),
    sa.Column('hold_action', sa.String(length=12), nullable=True),
    sa.CheckConstraint("(origin = 'request') = (answer IS NOT NULL)", name=op.f('ck_decision_record_request_answered')),
    sa.CheckConstraint("advice_outcome IS NULL OR advice_outcome IN ('approved_as_answered', 'declined_as_answered', 'timeout', 'finci_declined', 'finci_approved', 'finci_decided')", name=op.f('ck_decision_record_advice_outcome_known')),
    sa.CheckConstraint("answer IS NULL OR answer IN ('success', 'error')", name=op.f('ck_decision_record_answer_known')),
    sa.CheckConstraint("origin IN ('request', 'advice')", name=op.f('ck_decision_record_origin_known')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_account.id'], name=op.f('fk_decision_record_account_id_ledger_account')),
    sa.ForeignKeyConstraint(['card_id'], ['card.id'], name=op.f('fk_decision_record_card_id_card')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decision_record')),
    sa.UniqueConstraint('authorization_id', name=op.f('uq_decision_record_authorization_id'))
    )
    op.create_index(op.f('ix_decision_record_advice_outcome'), 'decision_record', ['advice_outcome'], unique=False)
    op.create_index('ix_decision_record_card_received', 'decision_record', ['card_id', 'received_at'], unique=False)
    op.create_index(op.f('ix_decision_record_received_at'), 'decision_record', ['received_at'], unique=False)
    op.create_index(op.f('ix_decision_record_token_id'), 'decision_record', ['token_id'], unique=False)
    op.create_table('ledger_hold',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('authorization_id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('release_reason', sa.String(length=20), nullable=True),
    sa.Column('converted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('converted_journal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("(status = 'released') = (released_at IS NOT NULL AND release_reason IS NOT NULL)", name=op.f('ck_ledger_hold_released_has_reason')),
    sa.CheckConstraint("source IN ('decision', 'stand_in', 'advice')", name=op.f('ck_ledger_hold_source_known')),
    sa.CheckConstraint("status IN ('open', 'released', 'converted')", name=op.f('ck_ledger_hold_status_known')),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_ledger_hold_amount_not_negative')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_account.id'], name=op.f('fk_ledger_hold_account_id_ledger_account')),
    sa.ForeignKeyConstraint(['card_id'], ['card.id'], name=op.f('fk_ledger_hold_card_id_card')),
    sa.ForeignKeyConstraint(['converted_journal_id'], ['ledger_journal.id'], name=op.f('fk_ledger_hold_converted_journal_id_ledger_journal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_hold')),
    sa.UniqueConstraint('authorization_id', name=op.f('uq_ledger_hold_authorization_id'))
    )
    op.create_index('ix_ledger_hold_account_placed', 'ledger_hold', ['account_id', 'placed_at'], unique=False)
    op.create_index('ix_ledger_hold_card_placed', 'ledger_hold', ['card_id', 'placed_at'], unique=False)
    op.create_index('ix_ledger_hold_status_expires', 'ledger_hold', ['status', 'expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ledger_hold_status_expires', table_name='ledger_hold')
    op.drop_index('ix_ledger_hold_card_placed', table_name='ledger_hold')
    op.drop_index('ix_ledger_hold_account_placed', table_name='ledger_hold')
    op.drop_table('ledger_hold')
    op.drop_index(op.f('ix_decision_record_token_id'), table_name='decision_record')
    op.drop_index(op.f('ix_decision_record_received_at'), table_name='decision_record')
    op.drop_index('ix_decision_record_card_received', table_name='decision_record')
    op.drop_index(op.f('ix_decision_record_advice_outcome'), table_name='decision_record')
    op.drop_table('decision_record')
    op.drop_index(op.f('ix_ledger_entry_journal_id'), table_name='ledger_entry')
    op.drop_index('ix_ledger_entry_account_posted', table_name='ledger_entry')
    op.drop_table('ledger_entry')
    op.drop_index(op.f('ix_card_person_id'), table_name='card')
    op.drop_index(op.f('ix_card_corporate_id'), table_name='card')
    op.drop_index(op.f('ix_card_account_id'), table_name='card')
    op.drop_table('card')
    op.drop_index(op.f('ix_ledger_journal_posted_at'), table_name='ledger_journal')
    op.drop_index(op.f('ix_ledger_journal_kind'), table_name='ledger_journal')
    op.drop_table('ledger_journal')
    op.drop_table('ledger_account')
    op.drop_table('decisioning_rule_config')
