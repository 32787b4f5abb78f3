"""POST /audit/export: compliance downloads a signed export that verifies offline; the download
is audited; everyone else, requests without the CSRF token and bad windows are refused with a
clear message and no file."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import zipfile

import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction, Target, offline, record
from console.audit.export_format import key_fingerprint
from console.audit.models import AuditEvent
from console.audit.settings import AuditSettings
from console.db import utcnow
from tests.audit.conftest import keyed_settings

settings = pytest.fixture(keyed_settings, name="settings")


@pytest.fixture
def events(db_session):
    for n in range(3):
        record(db_session, actor=Actor.cli(f"user{n}"), action=AuditAction.FLOW_SWITCH_DISABLE,
               target=Target("flow", "decisioning"), details={"n": n},
               at=dt.datetime(2030, 10, 10 + n, 9, tzinfo=dt.UTC))
    db_session.flush()


def _exports(db_session):
    return db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_LOG_EXPORT.value)).all()


def _post(client, token=None, **form):
    data = {"csrf_token": client.csrf_token if token is None else token, **form}
    return client.post("/audit/export", data=data, buffered=True)


def _configure(app, **audit):
    settings = app.extensions["settings"]
    app.extensions["settings"] = settings.replace(audit=AuditSettings(**audit))


def test_the_log_page_offers_compliance_the_export_with_the_last_30_days(as_compliance,
                                                                         signing_key):
    body = as_compliance.get("/audit/").get_data(as_text=True)
    today = utcnow().date()
    assert 'action="/audit/export"' in body and 'name="csrf_token"' in body
    assert f'name="since" value="{today - dt.timedelta(days=29)}"' in body
    assert f'name="until" value="{today + dt.timedelta(days=1)}"' in body
    assert "python -m console.audit.offline" in body and "audit public-key" in body
    assert re.search(r"key\s+<code>SHA256:[0-9a-f]{64}</code>", body)


def test_admins_read_the_log_but_are_not_offered_the_export(as_admin):
    body = as_admin.get("/audit/").get_data(as_text=True)
    assert "Audit log" in body and "/audit/export" not in body


def test_compliance_downloads_a_signed_export_that_verifies_offline(
        as_compliance, events, db_session, public_key_file, tmp_path, capsys):
    response = _post(as_compliance, since="2030-10-10", until="2030-10-13")
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert response.headers["Cache-Control"] == "no-store"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=audit-export-")
    data = response.get_data()
    # Streamed: no length up front, but the event count for the page's progress.
    assert "Content-Length" not in response.headers
    assert response.headers["X-Audit-Export-Events"] == "3"
    path = tmp_path / "download.zip"
    path.write_bytes(data)
    assert offline.main([str(path), "--public-key", str(public_key_file), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["count"] == 3 and verdict["exported_by"]["actor_type"] == "user"
    assert verdict["window"] == {"since": "2030-10-10T00:00:00.000000Z",
                                 "until": "2030-10-13T00:00:00.000000Z"}


def test_the_download_is_audited_with_window_range_count_and_file_hash(as_compliance, events,
                                                                       db_session):
    response = _post(as_compliance, since="2030-10-10", until="2030-10-13")
    (audited,) = _exports(db_session)
    details = json.loads(audited.details)
    assert audited.actor_type == "user" and audited.source_ip == "127.0.0.1"
    file_sha256 = hashlib.sha256(response.get_data()).hexdigest()
    assert audited.target_id == file_sha256 == details["file_sha256"]
    assert details["count"] == 3 and details["last_seq"] - details["first_seq"] == 2
    assert details["window"]["since"] == "2030-10-10T00:00:00.000000Z"


def test_empty_dates_export_everything(as_compliance, events, db_session):
    response = _post(as_compliance, since="", until="")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["first_seq"] == 1 and manifest["window"] == {"since": None, "until": None}


def test_no_card_number_reaches_the_downloaded_file(as_compliance, db_session, pan_scanner):
    record(db_session, actor=Actor.cli("x"), action=AuditAction.CARDS_STATUS_REQUEST,
           details={"pan": "4111111111111111"})
    response = _post(as_compliance)
    before = len(pan_scanner.hits)
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as archive:
        for name in archive.namelist():
            pan_scanner.scan(archive.read(name).decode(), f"export:{name}")
    assert pan_scanner.hits[before:] == []


@pytest.mark.parametrize("persona", ["as_viewer", "as_operator", "as_oncall", "as_admin"])
def test_other_roles_are_refused_and_the_denial_is_audited(request, persona, events,
                                                           db_session):
    client = request.getfixturevalue(persona)
    response = _post(client, since="2030-10-10", until="2030-10-13")
    assert response.status_code == 403 and response.mimetype != "application/zip"
    assert _exports(db_session) == []
    denial = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUTH_ACCESS_DENY.value)).all()
    assert len(denial) == 1


def test_anonymous_requests_are_sent_to_sign_in(client, events):
    assert client.post("/audit/export").status_code in {302, 401, 403}


@pytest.mark.parametrize("token", ["", "forged-token"])
def test_a_post_without_the_csrf_token_is_refused(as_compliance, events, db_session, token):
    response = _post(as_compliance, token=token)
    assert response.status_code == 403
    assert "This form has expired" in response.get_data(as_text=True)
    assert _exports(db_session) == []


@pytest.mark.parametrize(("form", "message"), [
    ({"since": "10/10/2026"}, "since must be a date like 2026-11-27"),
    ({"until": "tomorrow"}, "until must be a date like 2026-11-27"),
    ({"since": "2030-10-12", "until": "2030-10-12"}, "the window must end after it starts"),
    ({"since": "2020-01-01", "until": "2020-02-01"}, "no audit events between 2020-01-01"),
])
def test_bad_windows_are_a_clear_400_without_a_file(as_compliance, events, db_session, form,
                                                    message):
    response = _post(as_compliance, **form)
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert message in response.get_data(as_text=True)
    assert _exports(db_session) == []


def test_a_window_over_the_limit_is_a_clear_400(app, as_compliance, events, db_session,
                                                signing_key):
    _configure(app, export_signing_key=signing_key, export_max_rows=2)
    response = _post(as_compliance, since="2030-10-10", until="2030-10-13")
    assert response.status_code == 400
    assert "more than the export limit of 2" in response.get_data(as_text=True)
    assert _exports(db_session) == []


def test_without_a_signing_key_the_page_says_so_and_export_is_refused(app, as_compliance,
                                                                      events, db_session):
    _configure(app)
    page = as_compliance.get("/audit/").get_data(as_text=True)
    assert "Export is not configured" in page and 'action="/audit/export"' not in page
    response = _post(as_compliance, since="2030-10-10", until="2030-10-13")
    assert response.status_code == 503
    assert "set AUDIT_EXPORT_SIGNING_KEY" in response.get_data(as_text=True)
    assert _exports(db_session) == []


def test_the_log_page_links_compliance_to_the_public_key_download(as_compliance):
    body = as_compliance.get("/audit/").get_data(as_text=True)
    assert 'href="/audit/public-key"' in body


def test_compliance_downloads_the_public_key_exactly_as_the_cli_prints_it(
        as_compliance, cli, signing_key, tmp_path):
    response = as_compliance.get("/audit/public-key")
    assert response.status_code == 200
    fingerprint = key_fingerprint(signing_key.public_key())
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=audit-export-{fingerprint.removeprefix('SHA256:')[:16]}.pub.pem")
    result, _ = cli("audit", "public-key")
    assert result.exit_code == 0
    assert response.get_data(as_text=True) == result.output
    saved = tmp_path / "downloaded.pem"
    saved.write_bytes(response.get_data())
    assert key_fingerprint(offline.load_public_key(str(saved))) == fingerprint


def _refused_the_public_key(client):
    response = client.get("/audit/public-key")
    assert response.status_code == 403
    assert "BEGIN PUBLIC KEY" not in response.get_data(as_text=True)


def test_a_viewer_is_refused_the_public_key_download(as_viewer):
    _refused_the_public_key(as_viewer)


def test_an_admin_who_reads_but_cannot_export_the_log_is_refused_the_public_key(as_admin):
    _refused_the_public_key(as_admin)


def test_the_public_key_download_without_a_key_is_a_clear_404(app, as_compliance):
    _configure(app)
    assert "/audit/public-key" not in as_compliance.get("/audit/").get_data(as_text=True)
    response = as_compliance.get("/audit/public-key")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "audit export is not configured" in body and "AUDIT_EXPORT_SIGNING_KEY" in body
