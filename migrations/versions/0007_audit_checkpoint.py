"""audit checkpoints: signed, append-only statements of the chain hash at a row

Revision ID: 0007_audit_checkpoint
Revises: 0006_spend_index
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_audit_checkpoint"
down_revision = "0006_spend_index"
branch_labels = None
depends_on = None

# Same guard as audit_event (0001_foundation): the application may only INSERT checkpoints.
_PG_GUARD = """
CREATE FUNCTION audit_checkpoint_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_checkpoint is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE OR DELETE ON audit_checkpoint
  FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_append_only();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
  FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoint_append_only();
"""


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=80), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.CheckConstraint("seq > 0", name=op.f("ck_audit_checkpoint_seq_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoint")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_checkpoint_seq")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_GUARD)
    else:
        op.execute("CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint "
                   "BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only: UPDATE refused'); "
                   "END")
        op.execute("CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint "
                   "BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only: DELETE refused'); "
                   "END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON audit_checkpoint")
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoint_no_update ON audit_checkpoint")
        op.execute("DROP FUNCTION IF EXISTS audit_checkpoint_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoint_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoint_no_delete")
    op.drop_table("audit_checkpoint")
