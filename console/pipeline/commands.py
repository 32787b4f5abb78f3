"""``flask --app wsgi worker | replay … | pipeline …``: thin wrappers over the pipeline services.

Every command takes ``--json``. Exit codes: 0 done, 1 refused (the message says why), 2 usage.
"""

from __future__ import annotations

import datetime as dt
import signal
import sys

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from console import cli_types
from console.ingress.settings import IngressSettings
from console.unit_of_work import database


def _settings() -> IngressSettings:
    return current_app.extensions["settings"].ingress


def _emit(as_json: bool, payload: dict, human: str) -> None:
    from console.cli import emit

    emit(as_json, payload, human)


def _actor():
    from console.cli import cli_actor

    return cli_actor()


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _instant(value: str | None, name: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date or ISO 8601 time",
                                 param_hint=name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# --- worker -----------------------------------------------------------------------------------

@click.command("worker", help="Process stored webhook messages until stopped (SIGTERM/SIGINT "
                              "finish the current message and hand back the rest).")
@click.option("--once", is_flag=True, help="Process what is due now, then exit.")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=None)
@json_option
@with_appcontext
def worker_command(once: bool, batch_size: int | None, as_json: bool):
    from dataclasses import replace

    from console.pipeline import handlers, replay
    from console.pipeline.worker import Worker
    from console.startup import check

    settings = _settings()
    if batch_size:
        settings = replace(settings, batch_size=batch_size)
    check(current_app.extensions["settings"], database())
    loaded = handlers.load(settings.handler_modules)
    worker = Worker(database(), settings)

    def _stop(signum, _frame):
        worker.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if not as_json:
        click.echo(f"worker {worker.name} started; handlers for: "
                   f"{', '.join(sorted(handlers.registered_types())) or 'none'}", err=True)
    report = worker.run(until_idle=once,
                        step_replays=lambda: replay.step_active(database(), settings))
    payload = {"worker": worker.name, "handler_modules": loaded, **report.as_dict()}
    _emit(as_json, payload,
          f"worker {worker.name} stopped: {report.applied} applied, {report.no_handler} without "
          f"handler, {report.noop} no-op, {report.parked} parked, {report.failed} failed, "
          f"{report.dead} dead-lettered")


# --- replay -----------------------------------------------------------------------------------

def _criteria_options(command):
    for option in reversed([
        click.option("--message-id", type=cli_types.RECORD_ID, default=None,
                     help="One stored message."),
        click.option("--type", "type_", default=None, help="Message type, e.g. presentment."),
        click.option("--status", default=None,
                     type=click.Choice(["processed", "dead", "parked", "pending"])),
        click.option("--since", default=None, help="Received at or after (ISO 8601, UTC)."),
        click.option("--until", default=None, help="Received before (ISO 8601, UTC)."),
    ]):
        command = option(command)
    return command


def _criteria(message_id, type_, status, since, until):
    from console.pipeline.replay import Criteria, ReplayRefused

    try:
        return Criteria(message_id=message_id, type=type_, status=status,
                        since=_instant(since, "--since"), until=_instant(until, "--until"))
    except ReplayRefused as refused:
        raise click.UsageError(str(refused)) from None


def _job_dict(job) -> dict:
    return {"id": job.id, "status": job.status, "done": job.done, "total": job.total,
            "expected_noops": job.expected_noops, "created_by": job.created_by,
            "reason": job.reason, "criteria": job.criteria,
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


@click.group("replay", cls=AppGroup,
             help="Replay stored messages (idempotent, audited, rate-limited).")
def replay_group():
    pass


@replay_group.command("preview", help="How many messages match, and how many would be no-ops.")
@_criteria_options
@json_option
def replay_preview(message_id, type_, status, since, until, as_json):
    from console.pipeline import handlers, replay

    criteria = _criteria(message_id, type_, status, since, until)
    handlers.load(_settings().handler_modules)
    with database().transaction() as session:
        seen = replay.preview(session, criteria)
    _emit(as_json, {"criteria": criteria.as_dict(), **seen.as_dict()},
          f"{seen.total} messages match; {seen.noops} would be no-ops, {seen.would_apply} "
          f"would be applied, {seen.in_progress} are being processed now")


@replay_group.command("start", help="Start a replay job; the worker re-queues at a bounded rate.")
@_criteria_options
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@json_option
def replay_start(message_id, type_, status, since, until, reason, as_json):
    from console.pipeline import handlers, replay

    criteria = _criteria(message_id, type_, status, since, until)
    handlers.load(_settings().handler_modules)
    try:
        with database().transaction() as session:
            job = replay.start(session, _actor(), criteria, reason, _settings())
            payload = _job_dict(job)
    except replay.ReplayRefused as refused:
        _emit(as_json, {"error": str(refused)}, f"refused: {refused}")
        sys.exit(1)
    _emit(as_json, payload, f"replay #{payload['id']} started: {payload['total']} messages "
                            f"({payload['expected_noops']} expected no-ops)")


@replay_group.command("status", help="Show one replay job, or the most recent ones.")
@click.argument("job_id", type=cli_types.RECORD_ID, required=False)
@json_option
def replay_status(job_id, as_json):
    from sqlalchemy import select

    from console.pipeline.models import ReplayJob

    with database().transaction() as session:
        if job_id is not None:
            job = session.get(ReplayJob, job_id)
            if job is None:
                _emit(as_json, {"error": "no such replay"}, "no such replay")
                sys.exit(1)
            jobs = [job]
        else:
            jobs = list(session.scalars(select(ReplayJob).order_by(ReplayJob.id.desc())
                                        .limit(20)))
        rows = [_job_dict(job) for job in jobs]
    human = "\n".join(f"#{r['id']:<5} {r['status']:<10} {r['done']}/{r['total']}  "
                      f"{r['created_by']}: {r['reason']}" for r in rows) or "no replays yet"
    _emit(as_json, {"jobs": rows}, human)


@replay_group.command("cancel", help="Stop a running replay (already re-queued ones continue).")
@click.argument("job_id", type=cli_types.RECORD_ID)
@json_option
def replay_cancel(job_id, as_json):
    from console.pipeline import replay

    try:
        with database().transaction() as session:
            payload = _job_dict(replay.cancel(session, _actor(), job_id))
    except replay.ReplayRefused as refused:
        _emit(as_json, {"error": str(refused)}, f"refused: {refused}")
        sys.exit(1)
    _emit(as_json, payload, f"replay #{job_id} cancelled at {payload['done']}/{payload['total']}")


# --- pause switch -----------------------------------------------------------------------------

@click.group("pipeline", cls=AppGroup, help="The processing pause switch and the backlog.")
def pipeline_group():
    pass


def _switch(enabled: bool, reason: str, as_json: bool) -> None:
    from console.flows.commands import switch
    from console.flows.services import Flow

    def describe(state: dict) -> tuple[dict, str]:
        return ({"processing": "running" if state["enabled"] else "paused", "reason": reason},
                f"processing {'resumed' if state['enabled'] else 'paused'}")

    switch(Flow.PROCESSING, enabled, reason, as_json, describe=describe)


@pipeline_group.command("pause", help="Stop the workers applying messages (ingress keeps "
                                      "storing; the backlog grows). Audited.")
@click.option("--reason", required=True)
@json_option
def pipeline_pause(reason, as_json):
    _switch(False, reason, as_json)


@pipeline_group.command("resume", help="Let the workers apply messages again. Audited.")
@click.option("--reason", required=True)
@json_option
def pipeline_resume(reason, as_json):
    _switch(True, reason, as_json)


@pipeline_group.command("status", help="Paused or running, and the backlog by status.")
@json_option
def pipeline_status(as_json):
    from console.pipeline.services import backlog

    with database().transaction() as session:
        state = backlog(session)
    _emit(as_json, state.as_dict(),
          f"processing {'PAUSED' if state.paused else 'running'}; "
          + ", ".join(f"{k}: {v}" for k, v in state.by_status.items()))
