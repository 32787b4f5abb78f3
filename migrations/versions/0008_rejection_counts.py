"""refused deliveries counted per (minute, source, reason) instead of one row each

Unauthenticated traffic turned into one write per request (600 unsigned POSTs in 1 s wrote 600
rows). ``webhook_rejection`` becomes a counter table: existing rows are folded into their minute
buckets (count = rows, first/last seen = min/max received_at, one sample of each detail column).
The downgrade cannot restore single refusals: each counter becomes one row at its first sighting.

Revision ID: 0008_rejection_counts
Revises: 0007_audit_checkpoint
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_rejection_counts"
down_revision = "0007_audit_checkpoint"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# Constant SQL only (no interpolation). The UTC minute of ``received_at`` in each backend's own
# storage: PostgreSQL timestamptz; SQLite SQLAlchemy's ISO text ("YYYY-MM-DD HH:MM:SS.ffffff").
_MINUTE = {
    "postgresql": "date_trunc('minute', received_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "sqlite": "strftime('%Y-%m-%d %H:%M:00.000000', received_at)",
}
_FOLD = """
INSERT INTO webhook_rejection_folded (minute, source_ip, reason, count, first_seen_at,
    last_seen_at, http_status, detail, peer_ip, webhook_id)
SELECT minute, source_ip, reason, COUNT(*), MIN(received_at), MAX(received_at),
    MIN(http_status), MIN(detail), MIN(peer_ip), MIN(webhook_id)
FROM (SELECT {minute} AS minute, COALESCE(source_ip, '') AS source_ip, reason, received_at,
          http_status, detail, peer_ip, webhook_id
      FROM webhook_rejection) AS refused
GROUP BY minute, source_ip, reason
"""
_COPY_COUNTERS = """
INSERT INTO webhook_rejection (minute, source_ip, reason, count, first_seen_at, last_seen_at,
    http_status, detail, peer_ip, webhook_id)
SELECT minute, source_ip, reason, count, first_seen_at, last_seen_at, http_status, detail,
    peer_ip, webhook_id
FROM webhook_rejection_folded ORDER BY minute, first_seen_at
"""
_UNFOLD = """
INSERT INTO webhook_rejection_rows (received_at, reason, detail, http_status, source_ip, peer_ip,
    webhook_id)
SELECT first_seen_at, reason, detail, http_status, NULLIF(source_ip, ''), peer_ip, webhook_id
FROM webhook_rejection ORDER BY minute, id
"""
_COPY_ROWS = """
INSERT INTO webhook_rejection (received_at, reason, detail, http_status, source_ip, peer_ip,
    webhook_id)
SELECT received_at, reason, detail, http_status, source_ip, peer_ip, webhook_id
FROM webhook_rejection_rows ORDER BY received_at
"""


def _create_counters(name: str) -> None:
    # The final table, or (any other name) a scratch copy without id or constraints.
    final = name == 'webhook_rejection'
    op.create_table(name,
    *((sa.Column('id', ID, autoincrement=True, nullable=False),) if final else ()),
    sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source_ip', sa.String(length=45), nullable=False),
    sa.Column('reason', sa.String(length=48), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=False),
    sa.Column('detail', sa.String(length=100), nullable=True),
    sa.Column('peer_ip', sa.String(length=45), nullable=True),
    sa.Column('webhook_id', sa.String(length=256), nullable=True),
    *((sa.CheckConstraint('count > 0', name=op.f('ck_webhook_rejection_count_positive')),
       sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_rejection')),
       sa.UniqueConstraint('minute', 'source_ip', 'reason',
                           name=op.f('uq_webhook_rejection_minute_source_ip_reason')))
      if final else ()),
    )


def _create_rows(name: str) -> None:
    final = name == 'webhook_rejection'
    op.create_table(name,
    *((sa.Column('id', ID, autoincrement=True, nullable=False),) if final else ()),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=48), nullable=False),
    sa.Column('detail', sa.String(length=100), nullable=True),
    sa.Column('http_status', sa.Integer(), nullable=False),
    sa.Column('source_ip', sa.String(length=45), nullable=True),
    sa.Column('peer_ip', sa.String(length=45), nullable=True),
    sa.Column('webhook_id', sa.String(length=256), nullable=True),
    *((sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_rejection')),)
      if final else ()),
    )


def upgrade() -> None:
    _create_counters('webhook_rejection_folded')
    op.execute(_FOLD.replace("{minute}", _MINUTE[op.get_bind().dialect.name]))
    with op.batch_alter_table('webhook_rejection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_rejection_source_ip'))
        batch_op.drop_index(batch_op.f('ix_webhook_rejection_received_at'))
        batch_op.drop_index(batch_op.f('ix_webhook_rejection_reason'))
    op.drop_table('webhook_rejection')
    _create_counters('webhook_rejection')
    op.execute(_COPY_COUNTERS)
    op.drop_table('webhook_rejection_folded')
    with op.batch_alter_table('webhook_rejection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_rejection_source_ip'), ['source_ip'],
                              unique=False)


def downgrade() -> None:
    _create_rows('webhook_rejection_rows')
    op.execute(_UNFOLD)
    with op.batch_alter_table('webhook_rejection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_rejection_source_ip'))
    op.drop_table('webhook_rejection')
    _create_rows('webhook_rejection')
    op.execute(_COPY_ROWS)
    op.drop_table('webhook_rejection_rows')
    with op.batch_alter_table('webhook_rejection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_rejection_reason'), ['reason'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_rejection_received_at'), ['received_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_rejection_source_ip'), ['source_ip'],
                              unique=False)
