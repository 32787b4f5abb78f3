"""card-data key pairs (metadata; private keys live in the secret store) and FINCI's JWE card data

``card_data_key``: one row per RSA key pair FINCI encrypts card data to, with its kid, environment,
SPKI public key and fingerprint, and lifecycle. ``card_data_envelope``: the latest JWE per card,
ciphertext only.

Revision ID: 0014_card_data_keys
Revises: 0013_key_inventory
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0014_card_data_keys'
down_revision = '0013_key_inventory'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('card_data_key',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('environment', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('bits', sa.Integer(), nullable=False),
    sa.Column('public_pem', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('secret_name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(status = 'revoked') = (revoked_at IS NOT NULL)", name=op.f('ck_card_data_key_revoked_at_with_status')),
    sa.CheckConstraint("(status IN ('active', 'retired', 'revoked')) OR activated_at IS NULL", name=op.f('ck_card_data_key_activated_only_when_used')),
    sa.CheckConstraint("environment IN ('sandbox', 'production')", name=op.f('ck_card_data_key_environment_known')),
    sa.CheckConstraint("status IN ('pending', 'active', 'retiring', 'retired', 'revoked')", name=op.f('ck_card_data_key_status_known')),
    sa.CheckConstraint('bits >= 3072', name=op.f('ck_card_data_key_bits_minimum')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_data_key')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_card_data_key_fingerprint')),
    sa.UniqueConstraint('kid', name=op.f('uq_card_data_key_kid')),
    sa.UniqueConstraint('secret_name', name=op.f('uq_card_data_key_secret_name'))
    )
    op.create_table('card_data_envelope',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('card_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('token', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['card.id'], name=op.f('fk_card_data_envelope_card_id_card')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_data_envelope')),
    sa.UniqueConstraint('card_id', name=op.f('uq_card_data_envelope_card_id'))
    )
    with op.batch_alter_table('card_data_envelope', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_data_envelope_kid'), ['kid'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('card_data_envelope', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_data_envelope_kid'))

    op.drop_table('card_data_envelope')
    op.drop_table('card_data_key')
