"""audit search: a trigram index for free-text search of the audit log (PostgreSQL only)

The index covers exactly console.audit.queries.search_text(), so ``LIKE '%text%'`` on it is an
index scan rather than a walk of the whole log. SQLite has no trigram index: it scans, which
suits the embedded default. pg_trgm is a trusted extension (PostgreSQL 13+), so the database
owner can create it without superuser rights.

Revision ID: 0017_audit_search
Revises: 0016_key_action_approvals
Create Date: 2026-12-07
"""

from alembic import op

revision = "0017_audit_search"
down_revision = "0016_key_action_approvals"
branch_labels = None
depends_on = None

SEARCH_INDEX_SQL = (
    "CREATE INDEX IF NOT EXISTS ix_audit_event_search ON audit_event USING gin "
    "(lower(actor_id || ' ' || action || ' ' || coalesce(target_type, '') || ' ' || "
    "coalesce(target_id, '') || ' ' || details) gin_trgm_ops)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(SEARCH_INDEX_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_audit_event_search")
        # The extension stays: other schemas in the database may use it.
