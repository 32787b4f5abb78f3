"""audit search: a trigram index for free-text search of the audit log (PostgreSQL only)

The index covers exactly console.audit.queries.search_text(), so ``LIKE '%text%'`` on it is an
index scan rather than a walk of the whole log. SQLite has no trigram index: it scans, which
suits the embedded default. pg_trgm is a trusted extension (PostgreSQL 13+), so the database
owner can create it without superuser rights.

Revision ID: 0018_audit_search_retention
Revises: 0015_metric_totals (re-chained onto 0017_audit_export at merge)
Create Date: 2026-12-07
"""

from alembic import op

revision = "0018_audit_search_retention"
# TODO(merge): 0017_audit_export once the export branch lands.
down_revision = "0015_metric_totals"
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
