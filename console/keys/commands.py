"""``flask --app wsgi keys status [--json]``: the admin page's report for scripts and shells.

Exit 0 when nothing is a problem (attention items included), 1 when something is, so a cron
job or monitoring check can alert on it. Viewing is audited like the page.
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from console.db import utcnow
from console.keys.services import KeyStatusReport, Status, TlsFiles, view_key_status
from console.unit_of_work import database

_MARK = {Status.OK: "ok", Status.ATTENTION: "ATTENTION", Status.PROBLEM: "PROBLEM"}


@click.group("keys", cls=AppGroup, help="Credentials and keys: what is configured and healthy.")
def keys_group():
    pass


def _text(report: KeyStatusReport) -> str:
    lines = [f"credentials and keys ({report.environment}): {report.status.value} — "
             f"{report.count(Status.OK)} ok, {report.count(Status.ATTENTION)} attention, "
             f"{report.count(Status.PROBLEM)} problem"]
    for item in report.items:
        lines.append(f"\n[{_MARK[item.status]}] {item.title}")
        for _name, label, value in item.facts:
            lines.append(f"    {label}: {'—' if value is None else value}")
        for finding in item.findings:
            lines.append(f"  - {finding.status.value}: {finding.message}")
            if finding.action and finding.status is not Status.OK:
                lines.append(f"    do: {finding.action}")
        for row in item.rows:
            lines.append("    " + "  ".join(f"{k}={'' if v is None else v}"
                                            for k, v in row.items()))
    return "\n".join(lines)


@keys_group.command("status", help="Report webhook secrets, Card API credentials, the audit "
                                   "key, sign-in and TLS: status and what to do.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status_command(as_json: bool):
    from console.cli import cli_actor, emit

    with database().transaction() as session:
        report = view_key_status(session, current_app.extensions["settings"], actor=cli_actor(),
                                 at=utcnow(), tls=TlsFiles.from_env())
    emit(as_json, report.as_dict(), _text(report))
    if report.status is Status.PROBLEM:
        sys.exit(1)
