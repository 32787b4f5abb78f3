"""Counted events with no append-only row of their own (console.monitoring.models).

``count_event`` runs inside the transaction that records the event, so a rolled-back failure
is never counted and a committed one always is, whichever process saw it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.counters import counter_upserts
from console.monitoring.models import MetricEventCount

POSTING_FAILURES = "finci_posting_failures_total"
CARD_UPDATE_FAILURES = "finci_card_update_failures_total"
EVENT_METRICS = (POSTING_FAILURES, CARD_UPDATE_FAILURES)

_UPSERT = counter_upserts(
    MetricEventCount.__table__, keys=("metric", "labels", "day"),
    columns=("metric", "labels", "day", "count", "first_seen_at", "last_seen_at"))


def label_key(labels: Mapping[str, str]) -> str:
    """The stored form of a label set: canonical JSON, so equal sets are one row."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def count_event(session: Session, metric: str, labels: Mapping[str, str],
                at: dt.datetime) -> None:
    if metric not in EVENT_METRICS:
        raise ValueError(f"not a counted event metric: {metric}")
    day = at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    session.execute(_UPSERT[session.get_bind().dialect.name], dict(
        metric=metric, labels=label_key(labels), day=day, count=1, first_seen_at=at,
        last_seen_at=at))


def event_totals(session: Session) -> dict[str, dict[str, int]]:
    """{metric: {labels: total}} over every day kept (a few rows a day at most)."""
    totals: dict[str, dict[str, int]] = {metric: {} for metric in EVENT_METRICS}
    rows = session.execute(select(MetricEventCount.metric, MetricEventCount.labels,
                                  func.sum(MetricEventCount.count))
                           .group_by(MetricEventCount.metric, MetricEventCount.labels))
    for metric, labels, total in rows:
        totals.setdefault(metric, {})[labels] = int(total)
    return totals
