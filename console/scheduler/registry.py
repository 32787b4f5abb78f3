"""Every periodic job, in one list. A feature adds a line here for each job it defines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from console.audit import Actor
from console.audit.checkpoints import checkpoint_job
from console.audit.retention import retention_job


@dataclass(frozen=True)
class Job:
    name: str
    every: dt.timedelta
    # (session, actor, now) -> short summary for the job-status table; raise on failure.
    run: Callable[[Session, Actor, dt.datetime], str]
    description: str


def _revert_flows(session: Session, _actor: Actor, now: dt.datetime) -> str:
    from console.flows.services import revert_due, warn_due_reverts

    reverted = revert_due(session, now)
    warned = warn_due_reverts(session, now)
    parts = ([f"reverted {', '.join(reverted)}"] if reverted else []) + (
        [f"warned {', '.join(warned)}"] if warned else [])
    return "; ".join(parts) or "nothing due"


def _expire_flow_requests(session: Session, _actor: Actor, now: dt.datetime) -> str:
    from console.flows.approvals import expire_due

    expired = expire_due(session, now)
    return f"expired {', '.join(f'#{i}' for i in expired)}" if expired else "nothing due"


def _expire_key_requests(session: Session, _actor: Actor, now: dt.datetime) -> str:
    from flask import current_app, has_app_context

    from console.keys.approvals import KeyContext, expire_due

    # The job runs in the app's context (its secret store): staged secrets are deleted too.
    expired = expire_due(session, now, KeyContext.of(current_app) if has_app_context() else None)
    return f"expired {', '.join(f'#{i}' for i in expired)}" if expired else "nothing due"


def _audit_anonymous_denials(session: Session, actor: Actor, now: dt.datetime) -> str:
    from console.auth.denials import audit_job

    return audit_job(session, actor, now)


def _expire_holds(session: Session, actor: Actor, now: dt.datetime) -> str:
    from console.ledger.jobs import expire_holds

    return expire_holds(session, actor, now)


def _purge_rejections(session: Session, actor: Actor, now: dt.datetime) -> str:
    from console.ingress.retention import purge_job

    return purge_job(session, actor, now)


def _fold_metrics(session: Session, actor: Actor, now: dt.datetime) -> str:
    from console.monitoring.folds import fold_job

    return fold_job(session, actor, now)


def _retire_overdue_keys(session: Session, actor: Actor, now: dt.datetime) -> str:
    from console.deployment import recorded_environment
    from console.keys.inventory import retire_overdue

    environment = recorded_environment(session)
    retired = retire_overdue(session, environment, now, actor=actor) if environment else 0
    return f"retired {retired}" if retired else "nothing due"
def _health_checks(session: Session, _actor: Actor, now: dt.datetime) -> str:
    from console.checks.jobs import run_due

    return run_due(session, now)


def _lifecycle(name: str) -> Callable[[Session, Actor, dt.datetime], str]:
    """A job of console.transactions.jobs, imported when it first runs."""
    def run(session: Session, actor: Actor, now: dt.datetime) -> str:
        from console.transactions import jobs

        return getattr(jobs, name)(session, actor, now)

    return run


JOBS: tuple[Job, ...] = (
    Job("flows.auto_revert", dt.timedelta(seconds=30), _revert_flows,
        "Turn flows back on when their auto-revert time has passed; warn shortly before"),
    Job("flows.expire_requests", dt.timedelta(seconds=30), _expire_flow_requests,
        "Expire four-eyes kill switch requests nobody approved in FLOWS_APPROVAL_MINUTES"),
    Job("auth.anonymous_denials", dt.timedelta(minutes=1), _audit_anonymous_denials,
        "Audit anonymous API calls and writes refused since the last run (counted, one row)"),
    Job("ingress.purge_rejections", dt.timedelta(hours=1), _purge_rejections,
        "Purge refused-delivery records older than INGRESS_REJECTION_RETENTION_DAYS"),
    Job("keys.retire_overdue", dt.timedelta(minutes=5), _retire_overdue_keys,
        "Mark credentials retired once their rotation overlap has ended"),
    Job("keys.expire_requests", dt.timedelta(seconds=30), _expire_key_requests,
        "Expire key and credential requests nobody approved in KEY_ACTIONS_APPROVAL_MINUTES"),
    Job("ledger.expire_holds", dt.timedelta(minutes=1), _expire_holds,
        "Release authorization holds past their expiry (no advice or clearing came)"),
    Job("transactions.expire", dt.timedelta(minutes=5), _lifecycle("expire"),
        "Expire authorizations never presented; post orphan presentments after the grace"),
    Job("transactions.post_parked", dt.timedelta(minutes=1), _lifecycle("post_parked"),
        "Post presentments and refunds parked while ledger posting was switched off"),
    Job("transactions.retry_postings", dt.timedelta(minutes=5), _lifecycle("retry_postings"),
        "Retry postings that failed for a missing card or account once it exists"),
    Job("cards.send_actions", dt.timedelta(seconds=5), _lifecycle("send_card_actions"),
        "Send committed card status changes to FINCI; retry failures with backoff"),
    Job("audit.checkpoint", dt.timedelta(hours=1), checkpoint_job,
        "Sign the newest audit row's chain hash (off without AUDIT_EXPORT_SIGNING_KEY)"),
    Job("audit.retention", dt.timedelta(days=1), retention_job,
        "Archive audit rows older than AUDIT_RETENTION_MONTHS to signed bundles, then remove "
        "them (off without AUDIT_ARCHIVE_DIR)"),
    Job("monitoring.fold_metrics", dt.timedelta(minutes=1), _fold_metrics,
        "Fold settled deliveries, messages and decisions into the /metrics totals"),
    Job("cards.refresh", dt.timedelta(hours=1), _lifecycle("refresh_cards"),
        "Refresh the local card view from FINCI's get-cards"),
    Job("checks.run", dt.timedelta(seconds=30), _health_checks,
        "Run the health checks that are due; alert on state changes (console.checks)"),
)
