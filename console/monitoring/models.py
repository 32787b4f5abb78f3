"""Running totals behind the Prometheus counters and histograms (console.monitoring.metrics).

Two kinds, both in the database so every process and node scrapes the same figures:

- ``MetricFold`` / ``MetricTotal``: totals folded from append-only tables (deliveries, messages,
  decisions) by the ``monitoring.fold_metrics`` job. A scrape reads the totals and adds the few
  rows past each source's ``through_id``, so it never scans a whole table, and a counter keeps
  growing after retention purges the rows it counted.
- ``MetricRollup``: the same, per five minutes, for the Overview's time windows.
- ``MetricEventCount``: events with no append-only row of their own (a posting failure, a
  failed card status update), counted in the transaction that records them: one row per
  (metric, labels, day), added to with the shared counter upsert (console.counters). These
  events are rare, so the one row a day they share is never a hot spot.

Labels are stored as canonical JSON (sorted keys) of values from closed sets.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base


class MetricFold(Base):
    """How far the totals of one source have been folded: every row with ``id <= through_id``
    is in ``metric_total``."""

    __tablename__ = "metric_fold"

    source: Mapped[str] = mapped_column(String(40), primary_key=True)
    through_id: Mapped[int] = mapped_column(BigInteger, default=0)
    folded_at: Mapped[dt.datetime]


class MetricTotal(Base):
    __tablename__ = "metric_total"

    metric: Mapped[str] = mapped_column(String(80), primary_key=True)
    labels: Mapped[str] = mapped_column(String(300), primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    value: Mapped[float] = mapped_column(Float, default=0.0)


class MetricRollup(Base):
    """The same increments as ``MetricTotal``, per ``ROLLUP_BUCKET`` of the rows' received
    time: what the Overview's windows (15 minutes to 7 days) read instead of the raw tables."""

    __tablename__ = "metric_rollup"

    start: Mapped[dt.datetime] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(String(80), primary_key=True)
    labels: Mapped[str] = mapped_column(String(300), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)


class MetricEventCount(Base):
    __tablename__ = "metric_event_count"
    __table_args__ = (
        UniqueConstraint("metric", "labels", "day"),
        CheckConstraint("count > 0", name="count_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    metric: Mapped[str] = mapped_column(String(80))
    labels: Mapped[str] = mapped_column(String(300))
    day: Mapped[dt.datetime]
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
