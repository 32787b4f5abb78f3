"""running totals for the Prometheus counters and histograms

Counters and histograms are read from the database at scrape time (every process answers the
same). Totals folded, and per five minutes for the Overview's windows, from the append-only tables, the fold positions, and per-day counts of
events that have no append-only row (posting failures, failed card status updates).

Revision ID: 0015_metric_totals
Revises: 0014_card_data_keys
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_metric_totals"
down_revision = "0014_card_data_keys"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'metric_fold',
        sa.Column('source', sa.String(length=40), nullable=False),
        sa.Column('through_id', sa.BigInteger(), nullable=False),
        sa.Column('folded_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('source', name=op.f('pk_metric_fold')),
    )
    op.create_table(
        'metric_total',
        sa.Column('metric', sa.String(length=80), nullable=False),
        sa.Column('labels', sa.String(length=300), nullable=False),
        sa.Column('source', sa.String(length=40), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('metric', 'labels', name=op.f('pk_metric_total')),
    )
    op.create_table(
        'metric_rollup',
        sa.Column('start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('metric', sa.String(length=80), nullable=False),
        sa.Column('labels', sa.String(length=300), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('start', 'metric', 'labels', name=op.f('pk_metric_rollup')),
    )
    op.create_table(
        'metric_event_count',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('metric', sa.String(length=80), nullable=False),
        sa.Column('labels', sa.String(length=300), nullable=False),
        sa.Column('day', sa.DateTime(timezone=True), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('count > 0', name=op.f('ck_metric_event_count_count_positive')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_event_count')),
        sa.UniqueConstraint('metric', 'labels', 'day',
                            name=op.f('uq_metric_event_count_metric_labels_day')),
    )


def downgrade() -> None:
    op.drop_table('metric_event_count')
    op.drop_table('metric_rollup')
    op.drop_table('metric_total')
    op.drop_table('metric_fold')
