"""Prometheus metrics: one registry built per scrape from collectors that read the database.

Nothing is counted in process memory, so every gunicorn worker (and every node) answers the
same figures and no multiprocess directory is needed: a collector runs its queries when
Prometheus scrapes. Add a metric by writing a collector (a callable taking the scrape's session
and returning a ``prometheus_client`` Collector) and listing it in ``COLLECTORS``. Names use the
``finci_`` prefix and base units; labels take values from closed sets (flow names), never ids,
people or card data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from console.flows.services import all_states

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


COLLECTORS: list[Callable[[Session], Collector]] = [FlowCollector, HealthCheckCollector]


def registry_for(session: Session) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for make in COLLECTORS:
        registry.register(make(session))
    return registry


def exposition(session: Session) -> bytes:
    """The Prometheus text format of every collector, read now."""
    return generate_latest(registry_for(session))
