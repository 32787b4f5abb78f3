"""`flask --app wsgi scheduler`: run the scheduler; `scheduler jobs --json`: list job status."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from console.scheduler.models import JobStatus
from console.scheduler.registry import JOBS
from console.startup import check
from console.unit_of_work import database


@click.group("scheduler", cls=AppGroup, invoke_without_command=True,
             help="Run periodic jobs (one leader across instances).")
@click.pass_context
@with_appcontext
def scheduler_group(ctx):
    if ctx.invoked_subcommand is None:
        from console.scheduler.runner import wait_for_signal

        check(current_app.extensions["settings"], database())
        wait_for_signal(database())


@scheduler_group.command("jobs", help="List registered jobs and their last run.")
@click.option("--json", "as_json", is_flag=True)
def list_jobs(as_json: bool):
    from console.cli import emit

    with database().transaction() as session:
        status = {s.name: s for s in session.scalars(select(JobStatus))}
    rows = []
    for job in JOBS:
        s = status.get(job.name)
        rows.append({"name": job.name, "every_s": job.every.total_seconds(),
                     "description": job.description,
                     "last_outcome": s.last_outcome if s else None,
                     "last_finished_at": s.last_finished_at.isoformat() if s and
                     s.last_finished_at else None,
                     "last_summary": s.last_summary if s else None,
                     "runs": s.runs if s else 0, "failures": s.failures if s else 0})
    human = "\n".join(f"{r['name']:<28} every {r['every_s']:>6.0f}s  last: "
                      f"{r['last_outcome'] or 'never'}  runs {r['runs']} failures {r['failures']}"
                      + (f"\n{'':<30}{r['last_summary']}" if r["last_summary"] else "")
                      for r in rows)
    emit(as_json, {"jobs": rows}, human)
