"""``flask --app wsgi checks list|run [ID] [--json]``: the health page for shells and scripts.

``run`` exits 1 when a check it ran is failing, so cron or a deploy script can act on it; it is
audited like the page's "run now" and notifies like a scheduled run.
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from console.checks.models import ResultStatus
from console.checks.services import CheckRefused, overview, run_now
from console.db import utcnow
from console.unit_of_work import database


@click.group("checks", cls=AppGroup, help="Scheduled health checks: status, run now.")
def checks_group():
    pass


def _iso(value):
    return value.isoformat() if value is not None else None


@checks_group.command("list", help="Every check with its latest status, last and next run.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_command(as_json: bool):
    from console.cli import emit

    now = utcnow()
    with database().transaction() as session:
        views = overview(session, now, limit=1)
    rows = [{"id": v.check.id, "title": v.check.title, "every_s": int(v.check.every
                                                                      .total_seconds()),
             "needs": list(v.check.needs), "status": v.status,
             "detail": v.latest.detail if v.latest else None,
             "last_run_at": _iso(v.state.last_run_at if v.state else None),
             "next_run_at": _iso(v.next_run_at),
             "consecutive_failures": v.state.consecutive_failures if v.state else 0,
             "alerting": bool(v.state and v.state.alerting),
             "snoozed_until": _iso(v.state.snoozed_until if v.state else None)}
            for v in views]
    human = "\n".join(f"{r['id']:<22} {r['status'] or 'never run':<10} {r['detail'] or ''}"
                      for r in rows)
    emit(as_json, {"checks": rows}, human)


@checks_group.command("run", help="Run one check (or all) now; exit 1 if one is failing.")
@click.argument("check_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def run_command(check_id: str | None, as_json: bool):
    from console.cli import cli_actor, emit

    try:
        with database().transaction() as session:
            report = run_now(session, cli_actor(), current_app.extensions["settings"],
                             [check_id] if check_id else [], utcnow())
    except CheckRefused as refused:
        raise click.UsageError(str(refused)) from None
    rows = [{"id": r.check.id, "status": r.status, "detail": r.detail,
             "duration_ms": r.duration_ms} for r in report.ran]
    emit(as_json, {"checks": rows, "notifications": len(report.notifications)},
         "\n".join(f"{r['id']:<22} {r['status']:<8} {r['detail']}" for r in rows))
    if any(r.status == ResultStatus.FAILING for r in report.ran):
        sys.exit(1)
