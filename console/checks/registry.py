"""Every health check, in one list, with a stable id (the alert key, the metric label, the CLI
argument: never rename one). A check that reads the database lists ``database`` in ``needs``:
when the database check fails, those are skipped and do not alert on their own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from console.checks import probes


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    every: dt.timedelta
    probe: Callable[[probes.Context], probes.Finding]
    needs: tuple[str, ...] = ("database",)


_MINUTE = dt.timedelta(minutes=1)

CHECKS: tuple[Check, ...] = (
    Check("database", "Database answers, migrations applied", _MINUTE, probes.database, ()),
    Check("card_api", "FINCI Card API reachable, credentials accepted", 5 * _MINUTE,
          probes.card_api),
    Check("webhook_silence", "Webhooks keep arriving", _MINUTE, probes.webhook_silence),
    Check("backlog_age", "Processing backlog age", _MINUTE, probes.backlog_age),
    Check("dead_letters", "Dead letters", _MINUTE, probes.dead_letters),
    Check("timeout_rate", "Authorization timeout rate", _MINUTE, probes.timeout_rate),
    Check("decision_latency", "Decision latency p99", _MINUTE, probes.decision_latency),
    Check("duplicate_spike", "Duplicate delivery spike", _MINUTE, probes.duplicate_spike),
    Check("posting_failures", "Posting failures", _MINUTE, probes.posting_failures),
    Check("card_update_failures", "Card status update failures", _MINUTE,
          probes.card_update_failures),
    Check("credential_expiry", "Credentials and keys expiry", dt.timedelta(hours=1),
          probes.credential_expiry),
    Check("audit_chain", "Audit chain verifies", dt.timedelta(hours=1), probes.audit_chain),
    Check("clock_skew", "Clock skew against webhook-timestamp", 5 * _MINUTE, probes.clock_skew),
)

BY_ID: dict[str, Check] = {check.id: check for check in CHECKS}
