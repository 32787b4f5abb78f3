"""Prometheus metrics: one registry built per scrape from collectors that read the database.

Nothing is counted in process memory, so every gunicorn worker (and every node) answers the
same figures and no multiprocess directory is needed: a collector runs its queries when
Prometheus scrapes. Add a metric by writing a collector (a callable taking the scrape's session
and returning a ``prometheus_client`` Collector) and listing it in ``COLLECTORS``. Names use the
``finci_`` prefix and base units; labels take values from closed sets (flow names), never ids,
people or card data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.db import utcnow
from console.flows.services import all_states
from console.ingress.models import MessageStatus
from console.monitoring import event_counts, folds
from console.pipeline.services import backlog

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class FlowCollector(Collector):
    """``finci_flow_enabled{flow}`` (1 on, 0 off) and ``finci_flow_changed_timestamp_seconds``
    (when the switch last changed; absent for a flow never switched) from the switch table."""

    def __init__(self, session: Session):
        self.session = session

    def collect(self) -> Iterable[Metric]:
        enabled = GaugeMetricFamily("finci_flow_enabled",
                                    "Whether the flow is on (1) or switched off (0).",
                                    labels=["flow"])
        changed = GaugeMetricFamily("finci_flow_changed_timestamp_seconds",
                                    "When the flow's switch last changed, Unix time.",
                                    labels=["flow"])
        for state in all_states(self.session):
            enabled.add_metric([state.flow.value], 1.0 if state.enabled else 0.0)
            if state.changed_at is not None:
                # Whole seconds: with microseconds the text is 1.796635207123456e+09, fifteen
                # digits after the point, which pass the Luhn check one time in ten and read as
                # a card number to every scanner (and to anyone masking logs of scrapes).
                changed.add_metric([state.flow.value], float(int(state.changed_at.timestamp())))
        yield enabled
        yield changed


# Counters: (name, help, label names). Values are whole counts.
_COUNTERS = (
    (folds.DELIVERIES, "Webhook deliveries accepted, by message type and outcome "
     "(first, duplicate, conflict).", ("type", "outcome")),
    (folds.DUPLICATES, "Webhook deliveries of a message already stored, same bytes.", ()),
    (folds.DECISIONS, "Authorization requests answered, by decision and reason.",
     ("decision", "reason")),
    (folds.TIMEOUTS, "Authorization answers that missed FINCI's window (late_answer) or fell "
     "back to the safe default (safe_default).", ("kind",)),
    (event_counts.POSTING_FAILURES, "Ledger postings that failed, by reason.", ("reason",)),
    (event_counts.CARD_UPDATE_FAILURES, "Card status updates sent to FINCI that failed, by "
     "kind of error.", ("kind",)),
)
_HISTOGRAMS = (
    (folds.DELIVERY_LATENCY, "FINCI created_at to first receipt, by message type.",
     ("type",), folds.DELIVERY_LATENCY_BUCKETS),
    (folds.DECISION_DURATION, "Time to answer an authorization request (bucket at FINCI's "
     "deadline).", (), folds.DECISION_DURATION_BUCKETS),
)
# Sums are rounded to the millisecond: a float printed in full is often 13+ digits after its
# point, and such runs pass the Luhn check one time in ten (see FlowCollector).
_SUM_DECIMALS = 3


def _labels(key: str) -> dict[str, str]:
    return json.loads(key)


class TrafficCollector(Collector):
    """Deliveries, duplicates, decisions, timeouts and failures (counters) and the delivery
    latency and decision duration histograms, from console.monitoring.folds and event_counts:
    totals kept in the database, so every process reports the same and they survive
    retention."""

    def __init__(self, session: Session):
        self.session = session

    def collect(self) -> Iterable[Metric]:
        totals: dict[str, Mapping[str, float]] = dict(folds.current_totals(self.session))
        totals.update(event_counts.event_totals(self.session))
        for name, documentation, label_names in _COUNTERS:
            family = CounterMetricFamily(name, documentation, labels=list(label_names))
            for key, value in sorted(totals.get(name, {}).items()):
                labels = _labels(key)
                family.add_metric([labels.get(n, "") for n in label_names], int(value))
            yield family
        for name, documentation, label_names, buckets in _HISTOGRAMS:
            yield _histogram(name, documentation, label_names, buckets, totals)


def _histogram(name: str, documentation: str, label_names: tuple[str, ...],
               buckets: tuple[float, ...], totals: Mapping[str, Mapping[str, float]]) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=list(label_names))
    counts: dict[tuple[str, ...], dict[str, float]] = {}
    for key, value in totals.get(name, {}).items():
        labels = _labels(key)
        le = labels.pop("le")
        series = counts.setdefault(tuple(labels.get(n, "") for n in label_names), {})
        series[le] = series.get(le, 0.0) + value
    sums = {tuple(_labels(key).get(n, "") for n in label_names): value
            for key, value in totals.get(f"{name}_sum", {}).items()}
    bounds = [folds.bucket_of(bound, buckets) for bound in buckets] + ["+Inf"]
    for label_values in sorted(counts):
        running, cumulative = 0.0, []
        for le in bounds:
            running += counts[label_values].get(le, 0.0)
            cumulative.append((le, int(running)))
        family.add_metric(list(label_values), cumulative,
                          round(sums.get(label_values, 0.0), _SUM_DECIMALS))
    return family


class PipelineCollector(Collector):
    """``finci_pipeline_backlog_messages`` (waiting or being processed),
    ``finci_pipeline_oldest_message_age_seconds`` (oldest waiting, whole seconds; 0 when none)
    and ``finci_dead_letters``, read now."""

    def __init__(self, session: Session, now: Callable[[], dt.datetime] = utcnow):
        self.session, self.now = session, now

    def collect(self) -> Iterable[Metric]:
        queue = backlog(self.session)
        waiting = (queue.by_status.get(MessageStatus.PENDING, 0)
                   + queue.by_status.get(MessageStatus.PROCESSING, 0))
        age = 0 if queue.oldest_pending_at is None else max(
            0, int((self.now() - queue.oldest_pending_at).total_seconds()))
        yield GaugeMetricFamily("finci_pipeline_backlog_messages",
                                "Stored messages waiting to be applied or being applied.",
                                value=waiting)
        yield GaugeMetricFamily("finci_pipeline_oldest_message_age_seconds",
                                "Age of the oldest message waiting to be applied.", value=age)
        yield GaugeMetricFamily("finci_dead_letters",
                                "Messages that gave up after the maximum attempts.",
                                value=queue.by_status.get(MessageStatus.DEAD, 0))


def credential_expiries(session: Session, now: dt.datetime) -> dict[str, dt.datetime]:
    """{credential: expiry}: the TLS certificate served here, and every credential of the
    inventory (console.keys.inventory) still in use with an expiry, named ``kind:name`` (a
    few dozen at most: names are given by the console or by its admins)."""
    from console.deployment import recorded_environment
    from console.keys.inventory import State
    from console.keys.models import Credential
    from console.keys.services import TlsFiles, tls_item

    facts = {name: value for name, _label, value in tls_item(TlsFiles.from_env(), now).facts}
    expiries = {}
    if isinstance(facts.get("not_after"), dt.datetime):
        expiries["tls_certificate"] = facts["not_after"]
    environment = recorded_environment(session)
    in_use = (State.PENDING, State.ACTIVE, State.RETIRING)
    for credential in session.scalars(select(Credential).where(
            Credential.environment == environment, Credential.status.in_(in_use),
            Credential.expires_at.is_not(None))):
        expiries[f"{credential.kind}:{credential.name}"[:120]] = credential.expires_at
    return expiries


class CredentialCollector(Collector):
    """``finci_credential_expiry_timestamp_seconds{credential}``: when each credential or key
    expires, Unix time in whole seconds (see FlowCollector for why whole)."""

    def __init__(self, session: Session, now: Callable[[], dt.datetime] = utcnow):
        self.session, self.now = session, now

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("finci_credential_expiry_timestamp_seconds",
                                   "When the credential or key expires, Unix time.",
                                   labels=["credential"])
        for name, expires in sorted(credential_expiries(self.session, self.now()).items()):
            family.add_metric([name], float(int(expires.timestamp())))
        yield family


class HealthCheckCollector(Collector):
    """``finci_health_check_status{check}`` (1 ok, 0 failing) for every check that has run; a
    skipped check (its dependency failed) reads 0 too: it is not known to be ok."""

    def __init__(self, session: Session):
        self.session = session

    def collect(self) -> Iterable[Metric]:
        from console.checks.services import latest_statuses

        status = GaugeMetricFamily("finci_health_check_status",
                                   "Latest result of the health check: 1 ok, 0 failing.",
                                   labels=["check"])
        for check_id, value in sorted(latest_statuses(self.session).items()):
            status.add_metric([check_id], 1.0 if value == "ok" else 0.0)
        yield status


COLLECTORS: list[Callable[[Session], Collector]] = [
    FlowCollector, TrafficCollector, PipelineCollector, CredentialCollector,
    HealthCheckCollector]


def registry_for(session: Session) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for make in COLLECTORS:
        registry.register(make(session))
    return registry


def exposition(session: Session) -> bytes:
    """The Prometheus text format of every collector, read now."""
    return generate_latest(registry_for(session))
