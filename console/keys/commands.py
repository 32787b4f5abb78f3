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


# --- inventory: list, add a webhook secret, activate, retire, revoke -------------------------

def _environment() -> str:
    return current_app.extensions["settings"].environment.value


def _row(credential, usage: dict | None = None) -> dict:
    last_used = credential.last_used_at
    if usage and credential.fingerprint in usage:
        last_used = usage[credential.fingerprint][1]
    return {"id": credential.id, "kind": credential.kind, "name": credential.name,
            "environment": credential.environment, "fingerprint": credential.fingerprint,
            "status": credential.status, "created_at": credential.created_at,
            "activated_at": credential.activated_at, "expires_at": credential.expires_at,
            "retire_after": credential.retire_after, "retired_at": credential.retired_at,
            "revoked_at": credential.revoked_at, "last_used_at": last_used,
            "stored": credential.store_name is not None}


def _changed() -> None:
    """Ingress in this process sees the change at once; other processes within the cache
    period."""
    found = current_app.extensions.get("keys.webhook_secrets")
    if found is not None:
        found.invalidate()


def _fail(message: str) -> None:
    click.echo(f"refused: {message}", err=True)
    sys.exit(1)


@keys_group.command("list", help="The credential and key inventory of this environment.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_command(as_json: bool):
    from console.audit.actions import AuditAction
    from console.audit.services import record
    from console.cli import cli_actor, emit
    from console.keys import inventory
    from console.keys.services import USAGE_WINDOW, secret_usage

    with database().transaction() as session:
        usage = secret_usage(session, utcnow() - USAGE_WINDOW)
        rows = [_row(c, usage) for c in inventory.listing(session, _environment())]
        # Viewing is audited like the page (which records its view with the status report).
        record(session, actor=cli_actor(), action=AuditAction.KEYS_STATUS_VIEW,
               details={"view": "inventory", "credentials": len(rows)})
    lines = [f"{r['id']:>4}  {r['status']:<8}  {r['kind']:<18}  {r['fingerprint']:<16}  "
             f"last used {r['last_used_at'] or '—'}"
             + (f"  accepted until {r['retire_after']}" if r["retire_after"] else "")
             for r in rows] or ["the inventory is empty"]
    emit(as_json, {"environment": _environment(), "credentials": rows}, "\n".join(lines))


@keys_group.command("add-webhook-secret",
                    help="Store a new FINCI webhook secret (read from standard input or "
                         "--from-file, never from the command line) and make it active; the "
                         "current ones keep verifying for the overlap window.")
@click.option("--reason", required=True)
@click.option("--from-file", "from_file", type=click.File("r"), default=None,
              help="Read the whsec_… value from this file instead of standard input.")
@click.option("--stored-as", "stored_as", default=None,
              help="The secret is already in a read-only store (platform files, Vault written "
                   "elsewhere) under this name, e.g. webhook/production/2026-12.")
@click.option("--overlap-hours", type=click.IntRange(1, 24 * 30), default=None,
              help="How long the replaced secrets keep verifying (KEYS_WEBHOOK_OVERLAP_HOURS).")
def add_webhook_secret_command(reason: str, from_file, stored_as: str | None,
                               overlap_hours: int | None):
    import datetime as dt

    from console.cli import cli_actor
    from console.keys.inventory import InventoryError
    from console.keys.webhook_secrets import add_webhook_secret
    from console.secrets.factory import app_store

    settings = current_app.extensions["settings"]
    value = None if stored_as else (
        from_file.read() if from_file else
        click.prompt("webhook secret (whsec_…)", hide_input=True, err=True)).strip()
    overlap = dt.timedelta(hours=overlap_hours or settings.secrets.webhook_overlap_hours)
    try:
        with database().transaction() as session:
            credential = add_webhook_secret(
                session, app_store(current_app), cli_actor(), value=value,
                environment=_environment(), configured=settings.ingress.secrets, at=utcnow(),
                reason=reason, overlap=overlap, stored_as=stored_as)
            fingerprint = credential.fingerprint
    except InventoryError as refused:
        _fail(str(refused))
    _changed()
    click.echo(f"added webhook secret {fingerprint}; the previous ones are accepted for "
               f"{overlap} more; ingress nodes pick the change up within "
               f"{settings.secrets.cache_seconds} s")


def _transition(verb: str, credential_id: int, reason: str, **extra) -> None:
    from console.cli import cli_actor
    from console.keys import inventory

    try:
        with database().transaction() as session:
            credential = inventory.get(session, credential_id, _environment())
            getattr(inventory, verb)(session, cli_actor(), credential, environment=_environment(),
                                     at=utcnow(), reason=reason, **extra)
            summary = f"{credential.kind} {credential.fingerprint} is now {credential.status}"
    except inventory.InventoryError as refused:
        _fail(str(refused))
    _changed()
    click.echo(summary)


@keys_group.command("activate", help="Make a pending (or retiring) credential active.")
@click.argument("credential_id", type=int)
@click.option("--reason", required=True)
def activate_command(credential_id: int, reason: str):
    _transition("activate", credential_id, reason)


@keys_group.command("retire", help="Retire a credential now, or with --after-hours keep it "
                                   "accepted that long first (rotation overlap).")
@click.argument("credential_id", type=int)
@click.option("--reason", required=True)
@click.option("--after-hours", type=click.IntRange(1, 24 * 30), default=None)
def retire_command(credential_id: int, reason: str, after_hours: int | None):
    import datetime as dt

    if after_hours:
        _transition("schedule_retire", credential_id, reason,
                    retire_after=utcnow() + dt.timedelta(hours=after_hours))
    else:
        _transition("retire", credential_id, reason)


@keys_group.command("revoke", help="Revoke a credential at once (leaked or compromised).")
@click.argument("credential_id", type=int)
@click.option("--reason", required=True)
def revoke_command(credential_id: int, reason: str):
    _transition("revoke", credential_id, reason)


@keys_group.command("init-master-key", help="Write a new master key for the local keystore "
                                            "(SECRETS_BACKEND=local), mode 0600.")
@click.argument("path", type=click.Path(dir_okay=False))
def init_master_key_command(path: str):
    from pathlib import Path

    from console.secrets.local import generate_master_key
    from console.secrets.settings import REPOSITORY

    if Path(path).resolve().is_relative_to(REPOSITORY):
        _fail("the master key must be outside the repository")
    try:
        generate_master_key(path)
    except FileExistsError:
        _fail(f"{path} exists; a master key is never overwritten")
    click.echo(f"wrote {path}; set SECRETS_LOCAL_MASTER_KEY_FILE={path}")


@keys_group.command("record-configured",
                    help="Record the configured FINCI API credentials, SSO client secret, TLS "
                         "certificate and webhook secrets in the inventory (fingerprints only).")
def record_configured_command():
    from console.cli import cli_actor
    from console.keys.configured import record_configured

    with database().transaction() as session:
        added = record_configured(session, cli_actor(), current_app.extensions["settings"],
                                  TlsFiles.from_env(), at=utcnow())
        lines = [f"recorded {c.kind} {c.fingerprint}" for c in added]
    click.echo("\n".join(lines) or "nothing new to record")
