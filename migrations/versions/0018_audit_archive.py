"""audit archive: retention moves old audit rows to signed bundles, and only then deletes them

``audit_archive`` (append-only like the log) records each bundle: the seq range it holds, the
hash it starts from and the hash it ends on, its file and that file's sha256. The audit_event
guard changes in one way only: a DELETE of a row that an archive covers (seq at or below the
newest archive's last_seq) is allowed; every other DELETE, every UPDATE and TRUNCATE stay
refused. The chain's verification then starts from the newest archive's last hash.

Revision ID: 0018_audit_archive
Revises: 0017_audit_search
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_audit_archive"
down_revision = "0017_audit_search"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_PG_ARCHIVE_GUARD = """
CREATE FUNCTION audit_archive_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_archive is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_archive_no_update BEFORE UPDATE OR DELETE ON audit_archive
  FOR EACH ROW EXECUTE FUNCTION audit_archive_append_only();
CREATE TRIGGER audit_archive_no_truncate BEFORE TRUNCATE ON audit_archive
  FOR EACH STATEMENT EXECUTE FUNCTION audit_archive_append_only();
"""

_PG_EVENT_DELETE = """
CREATE FUNCTION audit_event_delete_archived_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.seq <= COALESCE((SELECT max(last_seq) FROM audit_archive), 0) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_event is append-only: DELETE of an unarchived row refused'
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER audit_event_no_update ON audit_event;
CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_delete_archived_only();
"""

_PG_EVENT_RESTORE = """
DROP TRIGGER IF EXISTS audit_event_no_delete ON audit_event;
DROP TRIGGER IF EXISTS audit_event_no_update ON audit_event;
DROP FUNCTION IF EXISTS audit_event_delete_archived_only();
CREATE TRIGGER audit_event_no_update BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
"""

_SQLITE_DELETE_ARCHIVED_ONLY = (
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "WHEN OLD.seq > COALESCE((SELECT max(last_seq) FROM audit_archive), 0) "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE of an unarchived row "
    "refused'); END")
_SQLITE_DELETE_NEVER = (
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE refused'); END")


def upgrade() -> None:
    op.create_table(
        "audit_archive",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("first_seq", SEQ, nullable=False),
        sa.Column("last_seq", SEQ, nullable=False),
        sa.Column("count", SEQ, nullable=False),
        sa.Column("anchor_prev_hash", sa.String(length=64), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=80), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint("first_seq > 0 AND last_seq >= first_seq",
                           name=op.f("ck_audit_archive_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_archive")),
        sa.UniqueConstraint("last_seq", name=op.f("uq_audit_archive_last_seq")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_ARCHIVE_GUARD)
        op.execute(_PG_EVENT_DELETE)
    else:
        op.execute("CREATE TRIGGER audit_archive_no_update BEFORE UPDATE ON audit_archive "
                   "BEGIN SELECT RAISE(ABORT, 'audit_archive is append-only: UPDATE refused'); "
                   "END")
        op.execute("CREATE TRIGGER audit_archive_no_delete BEFORE DELETE ON audit_archive "
                   "BEGIN SELECT RAISE(ABORT, 'audit_archive is append-only: DELETE refused'); "
                   "END")
        op.execute("DROP TRIGGER audit_event_no_delete")
        op.execute(_SQLITE_DELETE_ARCHIVED_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_EVENT_RESTORE)
        op.execute("DROP TRIGGER IF EXISTS audit_archive_no_truncate ON audit_archive")
        op.execute("DROP TRIGGER IF EXISTS audit_archive_no_update ON audit_archive")
        op.execute("DROP FUNCTION IF EXISTS audit_archive_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
        op.execute(_SQLITE_DELETE_NEVER)
        op.execute("DROP TRIGGER IF EXISTS audit_archive_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_archive_no_delete")
    op.drop_table("audit_archive")
