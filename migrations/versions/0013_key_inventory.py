"""credential and key inventory: one row per credential, one per state change

``credential`` records every credential and key (kind, environment, fingerprint, where it lives
in the secret store, lifecycle dates and status) and never a value; ``credential_event`` is the
rotation history. See console.keys.models.

Revision ID: 0013_key_inventory
Revises: 0012_health_checks
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0013_key_inventory'
down_revision = '0012_health_checks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('credential',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('environment', sa.String(length=20), nullable=False),
    sa.Column('fingerprint', sa.String(length=100), nullable=False),
    sa.Column('store_name', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retire_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("environment IN ('sandbox', 'production')", name=op.f('ck_credential_environment_known')),
    sa.CheckConstraint("status != 'retiring' OR retire_after IS NOT NULL", name=op.f('ck_credential_retiring_has_deadline')),
    sa.CheckConstraint("status IN ('pending', 'active', 'retiring', 'retired', 'revoked')", name=op.f('ck_credential_status_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credential')),
    sa.UniqueConstraint('kind', 'environment', 'fingerprint', name='uq_credential_kind_environment_fingerprint')
    )
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.create_index('ix_credential_environment_kind_status', ['environment', 'kind', 'status'], unique=False)

    op.create_table('credential_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('credential_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['credential_id'], ['credential.id'], name=op.f('fk_credential_event_credential_id_credential')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credential_event'))
    )
    with op.batch_alter_table('credential_event', schema=None) as batch_op:
        batch_op.create_index('ix_credential_event_credential_at', ['credential_id', 'at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('credential_event', schema=None) as batch_op:
        batch_op.drop_index('ix_credential_event_credential_at')

    op.drop_table('credential_event')
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.drop_index('ix_credential_environment_kind_status')

    op.drop_table('credential')
