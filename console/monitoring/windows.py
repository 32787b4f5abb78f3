"""The Overview's traffic panels over a chosen window, from the five-minute rollups.

Everything here comes from ``folds.windowed``: the rollup rows of the window plus the few rows
not folded yet, so a 7-day window on a database of millions of deliveries reads a few thousand
small rows, never the raw tables. Windows start on a rollup boundary (at most five minutes
earlier than asked), which the panel says.

Percentiles are estimated from the histogram buckets the way Prometheus' ``histogram_quantile``
does (linear within the bucket), so the Overview and a Grafana dashboard agree; they are shown
with "~" and a value in the last bucket as "over" its lower bound.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.decisioning.models import AdviceOutcome, DecisionRecord
from console.monitoring import folds
from console.pipeline.services import Bar, bars


class PanelWindow(StrEnum):
    QUARTER = "15m"
    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"

    @property
    def span(self) -> dt.timedelta:
        return _SPANS[self]

    @property
    def label(self) -> str:
        return _LABELS[self]


_SPANS = {PanelWindow.QUARTER: dt.timedelta(minutes=15), PanelWindow.HOUR: dt.timedelta(hours=1),
          PanelWindow.DAY: dt.timedelta(hours=24), PanelWindow.WEEK: dt.timedelta(days=7)}
_LABELS = {PanelWindow.QUARTER: "15 minutes", PanelWindow.HOUR: "1 hour",
           PanelWindow.DAY: "24 hours", PanelWindow.WEEK: "7 days"}
DEFAULT_WINDOW = PanelWindow.HOUR
# Chart columns: one per rollup bucket, or several buckets joined on the long windows.
CHART_COLUMNS = {PanelWindow.QUARTER: 3, PanelWindow.HOUR: 12, PanelWindow.DAY: 96,
                 PanelWindow.WEEK: 84}


@dataclass(frozen=True)
class Estimate:
    """A percentile from histogram buckets: ``value`` in seconds, or ``over`` the last finite
    bound when it falls in the +Inf bucket."""

    value: float | None
    over: bool = False


def quantile(q: float, cumulative: list[tuple[float, float]]) -> Estimate:
    """``histogram_quantile``: ``cumulative`` is (upper bound, count up to it), ascending,
    ending with +Inf."""
    total = cumulative[-1][1] if cumulative else 0
    if not total:
        return Estimate(None)
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if bound == float("inf"):
                return Estimate(lower, over=True)
            inside = count - below
            return Estimate(lower + (bound - lower) * ((rank - below) / inside if inside else 1))
        lower, below = bound, count
    return Estimate(lower, over=True)  # pragma: no cover - the +Inf bucket holds everything


def _cumulative(buckets: tuple[float, ...], counts: Mapping[str, float]) -> list[tuple[float,
                                                                                       float]]:
    running, out = 0.0, []
    for bound in (*buckets, float("inf")):
        le = folds.bucket_of(bound, buckets) if bound != float("inf") else "+Inf"
        running += counts.get(le, 0.0)
        out.append((bound, running))
    return out


@dataclass(frozen=True)
class LatencyRow:
    type: str
    count: int
    p50: Estimate
    p95: Estimate
    p99: Estimate


@dataclass(frozen=True)
class ReasonRow:
    decision: str
    reason: str
    count: int


@dataclass
class Traffic:
    window: PanelWindow
    since: dt.datetime
    deliveries: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    latency: list[LatencyRow] = field(default_factory=list)
    decisions: int = 0
    approved: int = 0
    declined: int = 0
    reasons: list[ReasonRow] = field(default_factory=list)
    decision_p50: Estimate = Estimate(None)
    decision_p99: Estimate = Estimate(None)
    near_misses: int = 0
    late_answers: int = 0
    safe_defaults: int = 0
    finci_timeouts: int = 0
    delivery_chart: list[Bar] = field(default_factory=list)
    decision_chart: list[Bar] = field(default_factory=list)

    @property
    def timeout_rate(self) -> float | None:
        """Late answers, safe defaults and FINCI's timeout overrides per answered request."""
        if not self.decisions:
            return None
        return (self.late_answers + self.safe_defaults + self.finci_timeouts) / self.decisions


def _labels(key: str) -> dict[str, str]:
    return json.loads(key)


def _count_above(cumulative: list[tuple[float, float]], bound: float) -> int:
    below = next(count for upper, count in cumulative if upper >= bound)
    return int(cumulative[-1][1] - below)


def traffic(session: Session, window: PanelWindow, now: dt.datetime) -> Traffic:
    since = folds.bucket_start(now - window.span)
    window_data = folds.windowed(session, now - window.span, (folds.DELIVERIES, folds.DECISIONS))
    totals = window_data.totals
    view = Traffic(window, since)
    for key, value in totals.get(folds.DELIVERIES, {}).items():
        outcome = _labels(key)["outcome"]
        view.by_outcome[outcome] = view.by_outcome.get(outcome, 0) + int(value)
    view.deliveries = sum(view.by_outcome.values())
    view.duplicates = int(sum(totals.get(folds.DUPLICATES, {}).values()))
    view.latency = _latency_rows(totals)
    for key, value in totals.get(folds.DECISIONS, {}).items():
        labels = _labels(key)
        view.reasons.append(ReasonRow(labels["decision"], labels["reason"], int(value)))
    view.reasons.sort(key=lambda row: (-row.count, row.decision, row.reason))
    view.decisions = sum(row.count for row in view.reasons)
    view.approved = sum(row.count for row in view.reasons if row.decision == "success")
    view.declined = view.decisions - view.approved
    durations = {_labels(k)["le"]: v for k, v in totals.get(folds.DECISION_DURATION, {}).items()}
    cumulative = _cumulative(folds.DECISION_DURATION_BUCKETS, durations)
    view.decision_p50, view.decision_p99 = quantile(0.5, cumulative), quantile(0.99, cumulative)
    view.near_misses = _count_above(cumulative, folds.NEAR_MISS_S)
    for key, value in totals.get(folds.TIMEOUTS, {}).items():
        if _labels(key)["kind"] == "late_answer":
            view.late_answers += int(value)
        else:
            view.safe_defaults += int(value)
    # FINCI's overrides arrive later, with the advice: a selective count on its index.
    view.finci_timeouts = int(session.scalar(
        select(func.count()).select_from(DecisionRecord).where(
            DecisionRecord.advice_outcome == AdviceOutcome.TIMEOUT,
            DecisionRecord.received_at >= since)) or 0)
    view.delivery_chart = _chart(window_data.per_bucket, folds.DELIVERIES, window, since)
    view.decision_chart = _chart(window_data.per_bucket, folds.DECISIONS, window, since)
    return view


def _latency_rows(totals: folds.Totals) -> list[LatencyRow]:
    per_type: dict[str, dict[str, float]] = {}
    for key, value in totals.get(folds.DELIVERY_LATENCY, {}).items():
        labels = _labels(key)
        counts = per_type.setdefault(labels["type"], {})
        counts[labels["le"]] = counts.get(labels["le"], 0.0) + value
    rows = []
    for type_, counts in sorted(per_type.items()):
        cumulative = _cumulative(folds.DELIVERY_LATENCY_BUCKETS, counts)
        rows.append(LatencyRow(type_, int(cumulative[-1][1]), quantile(0.5, cumulative),
                               quantile(0.95, cumulative), quantile(0.99, cumulative)))
    return rows


def _chart(buckets: Mapping[dt.datetime, Mapping[str, float]], metric: str, window: PanelWindow,
           since: dt.datetime) -> list[Bar]:
    columns = CHART_COLUMNS[window]
    step = window.span / columns
    values = [0] * columns
    for start, series in buckets.items():
        index = int((start - since) / step)
        if 0 <= index < columns:
            values[index] += int(series.get(metric, 0))
        elif index >= columns:  # the bucket holding "now"
            values[-1] += int(series.get(metric, 0))
    fmt = "%a %H:%M" if window is PanelWindow.WEEK else "%H:%M"
    return bars([((since + step * i).strftime(fmt), v) for i, v in enumerate(values)],
                width=300, height=40)
