"""Audit log pages for compliance and admins. Viewing, verifying and exporting are audited."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, current_app, render_template, request, url_for

from console import navigation, request_params
from console.audit.actions import AuditAction, Outcome
from console.audit.checkpoints import NO_KEY, verify_log
from console.audit.diff import present
from console.audit.export import (
    ExportNotConfigured,
    ExportRefused,
    ExportWindow,
    filename,
    prepare,
    stream_export,
)
from console.audit.export_format import (
    JSONL,
    key_fingerprint,
    public_key_file_text,
    public_key_filename,
)
from console.audit.models import AuditEvent
from console.audit.queries import PAGE_SIZE, AuditFilter, search, text_problem
from console.audit.services import record
from console.audit.settings import KEY_VARIABLE
from console.audit.standalone import FILENAME, StandaloneError, build
from console.auth.sessions import now
from console.auth.settings import SensitiveAction
from console.auth.step_up import step_up_required
from console.htmx import htmx
from console.security.permissions import Permission, require
from console.unit_of_work import database, request_session
from console.web_actor import current_actor

bp = Blueprint("audit", __name__, url_prefix="/audit")
_FIELD_LIMIT = 200


@bp.record_once
def _on_register(state):
    navigation.register(state.app, "Audit log", "audit.log", Permission.VIEW_AUDIT, 90)


def _date(name: str, source=None) -> dt.datetime | None:
    return request_params.day_start(name, (request.args if source is None else source).get(name))


def _text(name: str) -> str | None:
    value = request.args.get(name, "").strip()
    if len(value) > _FIELD_LIMIT:
        abort(400, description=f"{name} is too long")
    return value or None


def _criteria() -> AuditFilter:
    outcome = _text("outcome")
    if outcome and outcome not in {o.value for o in Outcome}:
        abort(400, description="outcome must be success, failure or denied")
    until = _date("until")
    # Free text keeps inner spaces and any punctuation; only control characters are refused.
    query = request.args.get("q", "").strip()
    if problem := text_problem(query):
        abort(400, description=problem)
    return AuditFilter(
        actor=_text("actor"), action=_text("action"), target=_text("target"),
        target_type=_text("target_type"), outcome=outcome, text=query or None,
        since=_date("since"), until=until + dt.timedelta(days=1) if until else None,
        before_seq=request_params.integer("before", request.args.get("before")),
    )


@bp.get("/")
@require(Permission.VIEW_AUDIT)
def log():
    criteria = _criteria()
    session = request_session()
    events = search(session, criteria, PAGE_SIZE + 1)
    record(session, actor=current_actor(), action=AuditAction.AUDIT_LOG_VIEW,
           details={"filter": criteria.as_dict()})
    older_url = None
    if len(events) > PAGE_SIZE:
        older_url = url_for("audit.log", **{**request.args.to_dict(),
                                            "before": events[PAGE_SIZE - 1].seq})
    context = {"events": events[:PAGE_SIZE], "older_url": older_url, "args": request.args,
               "present": present}
    if htmx and htmx.target == "audit-rows":
        return render_template("audit/_partials/_rows.html", **context)
    return render_template("audit/log.html", **context, export=_export_form())


@bp.get("/events/<seq>")
@require(Permission.VIEW_AUDIT)
def event(seq: str):
    """One event: who, what, when, from where, what it changed (a diff) and its chain hashes;
    a link to paste into a ticket. Viewing it is audited like the log."""
    number = request_params.integer("seq", seq, minimum=1)
    session = request_session()
    found = session.get(AuditEvent, number)
    if found is None:
        abort(404, description=f"there is no audit event #{number}")
    record(session, actor=current_actor(), action=AuditAction.AUDIT_LOG_VIEW,
           details={"event": number})
    return render_template("audit/event.html", e=found, shown=present(found.details))


def _audit_settings():
    return current_app.extensions["settings"].audit


def _export_form() -> dict:
    """Defaults for the export form: the last 30 days, today included."""
    today = now().date()
    key = _audit_settings().export_signing_key
    return {"since": (today - dt.timedelta(days=29)).isoformat(),
            "until": (today + dt.timedelta(days=1)).isoformat(),
            "key_id": key_fingerprint(key.public_key()) if key else None}


@bp.get("/verify")
@require(Permission.VIEW_AUDIT)
def verify():
    """The chain and the signed checkpoints, as ``flask audit verify`` checks them: a chain
    rewritten with every hash recomputed still fails here."""
    session = request_session()
    key = _audit_settings().export_signing_key
    report = verify_log(session, key.public_key() if key else None,
                        checkpoint_dir=_audit_settings().checkpoint_dir,
                        archive_dir=_audit_settings().archive_dir)
    record(session, actor=current_actor(), action=AuditAction.AUDIT_CHAIN_VERIFY,
           outcome=Outcome.SUCCESS if report["ok"] else Outcome.FAILURE, details=report)
    return render_template("audit/_partials/_verify.html", report=report,
                           checkpoints=report["checkpoints"], no_key=NO_KEY)


@bp.post("/export")
@require(Permission.EXPORT_AUDIT)
@step_up_required(SensitiveAction.AUDIT_EXPORT)
def export():
    """A signed export of [since, until) (UTC dates; either may be empty for an open end)."""
    events_format = request.form.get("format", JSONL)
    try:
        window = ExportWindow(_date("since", request.form), _date("until", request.form))
        audit = _audit_settings()
        bounds = prepare(request_session(), signing_key=audit.export_signing_key,
                         window=window, max_rows=audit.export_max_rows,
                         events_format=events_format)
    except ExportNotConfigured as refused:
        abort(503, description=str(refused))
    except ExportRefused as refused:
        abort(400, description=str(refused))
    # Streamed (console.audit.export.stream_export): the zip is written as it is sent, in its
    # own transaction, which audits the export before the zip's last bytes go out.
    chunks = stream_export(database().transaction, actor=current_actor(),
                           signing_key=audit.export_signing_key, window=window, bounds=bounds,
                           exported_at=now(), events_format=events_format)
    response = current_app.response_class(chunks, mimetype="application/zip")
    response.headers["Content-Disposition"] = f"attachment; filename={filename(bounds)}"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Audit-Export-Events"] = str(bounds[1] - bounds[0] + 1)
    return response


def _configured_key(what: str):
    key = _audit_settings().export_signing_key
    if key is None:
        abort(404, description=f"audit export is not configured: set {KEY_VARIABLE} (or "
                               f"{KEY_VARIABLE}_FILE), so there is no {what} to download")
    return key


@bp.get("/public-key")
@require(Permission.EXPORT_AUDIT)
def public_key():
    """The export signing key's public half, as ``flask audit public-key`` prints it, for
    auditors to verify exports offline. Not secret, so no step-up; 404 when not configured."""
    key = _configured_key("public key")
    response = current_app.response_class(public_key_file_text(key.public_key()),
                                          mimetype="application/x-pem-file")
    response.headers["Content-Disposition"] = (
        f"attachment; filename={public_key_filename(key.public_key())}")
    return response


@bp.get("/verifier.py")
@require(Permission.EXPORT_AUDIT)
def verifier():
    """The one-file offline verifier (console.audit.standalone), as ``flask audit verifier``
    writes it. Public code, like the public key: no step-up, not audited; offered only where
    exports are (404 when export is not configured)."""
    _configured_key("verifier")
    try:
        built = build()
    except StandaloneError as error:
        abort(503, description=str(error))
    response = current_app.response_class(built.text, mimetype="text/x-python")
    response.headers["Content-Disposition"] = f"attachment; filename={FILENAME}"
    response.headers["X-Verifier-SHA256"] = built.sha256
    return response
