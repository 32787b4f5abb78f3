"""``flask --app wsgi keys status [--json]``: the admin page's report for scripts and shells.

Exit 0 when nothing is a problem (attention items included), 1 when something is, so a cron
job or monitoring check can alert on it. Viewing is audited like the page.

The inventory actions (add-webhook-secret, activate, retire, revoke, record-configured) go
through ``console.keys.approvals``: with KEY_ACTIONS_REQUIRE_SECOND_APPROVER each is filed as a
request, listed by ``keys requests`` and decided by ``keys approve|reject ID`` (a different
person: the OS user must be a console user holding MANAGE_KEYS) or ``keys cancel ID``.
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from console import cli_types
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
@click.option("--from-file", "from_file", type=cli_types.File("r"), default=None,
              help="Read the whsec_… value from this file instead of standard input.")
@click.option("--stored-as", "stored_as", default=None,
              help="The secret is already in a read-only store (platform files, Vault written "
                   "elsewhere) under this name, e.g. webhook/production/2026-12.")
@click.option("--overlap-hours", type=click.IntRange(1, 24 * 30), default=None,
              help="How long the replaced secrets keep verifying (KEYS_WEBHOOK_OVERLAP_HOURS).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def add_webhook_secret_command(reason: str, from_file, stored_as: str | None,
                               overlap_hours: int | None, as_json: bool):
    from console.cli import emit
    from console.keys.approvals import KeyAction

    settings = current_app.extensions["settings"]
    value = None if stored_as else (
        from_file.read() if from_file else
        click.prompt("webhook secret (whsec_…)", hide_input=True, err=True)).strip()
    hours = overlap_hours or settings.secrets.webhook_overlap_hours
    outcome = perform_or_fail(KeyAction.WEBHOOK_SECRET_ADD, reason, as_json=as_json,
                              value=value, stored_as=stored_as, overlap_hours=hours)
    if outcome is not None:
        emit(as_json, _row(outcome) | {"overlap_hours": hours},
             f"added webhook secret {outcome.fingerprint}; the previous ones are accepted "
             f"for {hours} h more; ingress nodes pick the change up within "
             f"{settings.secrets.cache_seconds} s")


def perform_or_fail(action, reason: str, *, as_json: bool = False, **params):
    """Run a key action as the OS user through console.keys.approvals (at once, or filed as a
    request for a second person: then it says so and returns None). Refusals exit 1."""
    from console.cli import cli_actor, emit
    from console.keys.approvals import KeyActionRefused, KeyContext, perform
    from console.keys.card_data_keys import CardDataKeyError
    from console.keys.inventory import InventoryError
    from console.secrets.store import SecretStoreError

    try:
        with database().transaction() as session:
            done = perform(session, cli_actor(), KeyContext.of(current_app), action,
                           reason=reason, at=utcnow(), **params)
            if done.request is not None:
                line = (f"request #{done.request.id} filed: {done.request.summary} needs a "
                        f"second person's approval (`keys approve {done.request.id}`) before "
                        f"{done.request.expires_at.isoformat()}")
    except (InventoryError, KeyActionRefused, CardDataKeyError, SecretStoreError) as refused:
        if as_json:
            emit(True, {"error": str(refused)}, "")
            sys.exit(1)
        _fail(str(refused))
    if done.request is not None:
        emit(as_json, {"request": request_dict(done.request)}, line)
        return None
    _changed()
    return done.result


def _transition(action, credential_id: int, reason: str, as_json: bool, **extra) -> None:
    from console.cli import emit
    from console.keys.approvals import describe

    result = perform_or_fail(action, reason, as_json=as_json, credential_id=credential_id,
                             **extra)
    if result is not None:
        emit(as_json, _row(result), describe(result))


@keys_group.command("activate", help="Make a pending (or retiring) credential active.")
@click.argument("credential_id", type=cli_types.RECORD_ID)
@click.option("--reason", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def activate_command(credential_id: int, reason: str, as_json: bool):
    from console.keys.approvals import KeyAction

    _transition(KeyAction.CREDENTIAL_ACTIVATE, credential_id, reason, as_json)


@keys_group.command("retire", help="Retire a credential now, or with --after-hours keep it "
                                   "accepted that long first (rotation overlap).")
@click.argument("credential_id", type=cli_types.RECORD_ID)
@click.option("--reason", required=True)
@click.option("--after-hours", type=click.IntRange(1, 24 * 30), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def retire_command(credential_id: int, reason: str, after_hours: int | None, as_json: bool):
    from console.keys.approvals import KeyAction

    if after_hours:
        _transition(KeyAction.CREDENTIAL_SCHEDULE_RETIRE, credential_id, reason, as_json,
                    hours=after_hours)
    else:
        _transition(KeyAction.CREDENTIAL_RETIRE, credential_id, reason, as_json)


@keys_group.command("revoke", help="Revoke a credential at once (leaked or compromised).")
@click.argument("credential_id", type=cli_types.RECORD_ID)
@click.option("--reason", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def revoke_command(credential_id: int, reason: str, as_json: bool):
    from console.keys.approvals import KeyAction

    _transition(KeyAction.CREDENTIAL_REVOKE, credential_id, reason, as_json)


@keys_group.command("init-master-key", help="Write a new master key for the local keystore "
                                            "(SECRETS_BACKEND=local), mode 0600.")
@click.argument("path", type=cli_types.Path(dir_okay=False))
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
    except OSError as error:
        _fail(f"cannot write {path} ({error.strerror})")
    click.echo(f"wrote {path}; set SECRETS_LOCAL_MASTER_KEY_FILE={path}")


@keys_group.command("record-configured",
                    help="Record the configured FINCI API credentials, SSO client secret, TLS "
                         "certificate and webhook secrets in the inventory (fingerprints only).")
@click.option("--reason", default="record the configured credentials", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def record_configured_command(reason: str, as_json: bool):
    from console.cli import emit
    from console.keys.approvals import KeyAction

    added = perform_or_fail(KeyAction.RECORD_CONFIGURED, reason, as_json=as_json)
    if added is not None:
        emit(as_json, {"recorded": [_row(c) for c in added]},
             "\n".join(f"recorded {c.kind} {c.fingerprint}" for c in added)
             or "nothing new to record")


# --- four eyes: requests waiting for a second person ------------------------------------------

def request_dict(request) -> dict:
    return {"request": request.id, "action": request.action, "summary": request.summary,
            "reason": request.reason, "environment": request.environment,
            "requested_by": request.requested_by,
            "requested_at": request.requested_at.isoformat(),
            "expires_at": request.expires_at.isoformat(), "status": request.status,
            "decided_by": request.decided_by}


@keys_group.command("requests", help="Key and credential requests waiting for approval.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def requests_command(as_json: bool):
    from console.cli import emit
    from console.keys.approvals import pending

    with database().transaction() as session:
        waiting = [request_dict(r) for r in pending(session, _environment())]
    lines = [f"request #{r['request']}: {r['summary']} by {r['requested_by']} ({r['reason']}), "
             f"expires {r['expires_at']}" for r in waiting] or ["no request is waiting"]
    emit(as_json, {"requests": waiting}, "\n".join(lines))


def _decide_command(name: str, help_text: str):
    @keys_group.command(name, help=help_text)
    @click.argument("request_id", type=cli_types.RECORD_ID)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    def command(request_id: int, as_json: bool):
        from console.cli import cli_actor, emit
        from console.keys.approvals import Decision, KeyActionRefused, KeyContext, decide, describe
        from console.secrets.store import SecretStoreError

        try:
            with database().transaction() as session:
                decided = decide(session, cli_actor(), KeyContext.of(current_app), request_id,
                                 Decision(name), now=utcnow())
                payload = request_dict(decided.request)
                if decided.result is not None:
                    payload["outcome"] = describe(decided.result)
        except (KeyActionRefused, SecretStoreError) as refused:
            if as_json:
                emit(True, {"error": str(refused)}, "")
                sys.exit(1)
            _fail(str(refused))
        _changed()
        emit(as_json, payload, f"request #{request_id} {payload['status']}"
             + (f": {payload['outcome']}" if "outcome" in payload else ""))

    return command


approve_command = _decide_command("approve", "Approve someone else's key request (carries it "
                                             "out, in your name). Your OS user must be a "
                                             "console user holding MANAGE_KEYS.")
reject_command = _decide_command("reject", "Reject someone else's key request.")
cancel_command = _decide_command("cancel", "Withdraw your own key request.")
