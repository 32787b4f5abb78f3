"""Health page: every panel role sees the checks; on-call snoozes (reason, expiry, CSRF,
audited) and runs a check now (audited)."""

import datetime as dt

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.checks.models import CheckResult, CheckState
from console.checks.registry import CHECKS
from console.checks.services import run_checks
from console.db import utcnow

HX = {"HX-Request": "true"}


def test_every_panel_role_sees_every_check_with_its_history(as_viewer, db_session, settings):
    for minutes in (2, 1):
        run_checks(db_session, settings, utcnow() - dt.timedelta(minutes=minutes),
                   [c for c in CHECKS if c.id in ("database", "dead_letters")])
    db_session.commit()
    page = as_viewer.get("/health/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    for check in CHECKS:
        assert f'data-check="{check.id}"' in body
    assert 'data-check="database" data-status="ok"' in body
    assert body.count("tick tick--ok") == 4  # two runs of two checks, drawn as SVG bars
    assert "Run now" not in body and "snooze-form" not in body  # viewers only look


def test_the_polled_panel_is_the_table_only(as_viewer):
    response = as_viewer.get("/health/panel", headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and 'data-testid="check-table"' in body
    assert "<html" not in body and "snooze-form" not in body


def test_outsiders_are_refused(app, sign_in, client):
    assert client.get("/health/").status_code in (302, 401)
    response = client.get("/health/panel", headers=HX)
    assert response.headers.get("HX-Redirect") or response.status_code == 401


def test_oncall_snoozes_a_check_with_a_reason_and_it_is_audited(as_oncall, db_session):
    response = as_oncall.post("/health/snooze", headers=HX, data={
        "csrf_token": as_oncall.csrf_token, "check_id": "webhook_silence",
        "reason": "INC-12 FINCI maintenance window", "minutes": "60"})
    assert response.status_code == 200
    assert 'data-testid="snoozed"' in response.get_data(as_text=True)
    state = db_session.get(CheckState, "webhook_silence")
    assert state.snooze_reason == "INC-12 FINCI maintenance window"
    assert dt.timedelta(minutes=59) < state.snoozed_until - utcnow() <= dt.timedelta(minutes=60)
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "health.check.snooze")).one()
    assert event.actor_type == "user" and event.target_id == "webhook_silence"


@pytest.mark.parametrize(("form", "status"), [
    ({"reason": ""}, 422), ({"minutes": ""}, 422), ({"minutes": "100000"}, 422),
    ({"check_id": "nope"}, 422), ({"reason": "x" * 501}, 422), ({"reason": "two\nlines"}, 422),
])
def test_a_snooze_without_reason_or_expiry_is_refused_and_writes_nothing(as_oncall, db_session,
                                                                         form, status):
    data = {"csrf_token": as_oncall.csrf_token, "check_id": "dead_letters",
            "reason": "INC-1", "minutes": "60"}
    data.update(form)
    assert as_oncall.post("/health/snooze", headers=HX, data=data).status_code == status
    assert db_session.scalars(select(CheckState)).all() == []
    assert db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "health.check.snooze")).all() == []


def test_a_snooze_without_the_csrf_token_is_refused(as_oncall, db_session):
    response = as_oncall.post("/health/snooze", headers=HX, data={
        "check_id": "dead_letters", "reason": "INC-1", "minutes": "60"})
    assert response.status_code in (400, 403)
    assert db_session.get(CheckState, "dead_letters") is None


@pytest.mark.parametrize("persona", ["viewer", "operator", "compliance", "admin"])
def test_only_oncall_snoozes_or_runs(app, sign_in, db_session, persona):
    client = sign_in(app.test_client(), persona)
    data = {"csrf_token": client.csrf_token, "check_id": "dead_letters", "reason": "x",
            "minutes": "60"}
    assert client.post("/health/snooze", headers=HX, data=data).status_code == 403
    assert client.post("/health/dead_letters/run", headers=HX,
                       data={"csrf_token": client.csrf_token}).status_code == 403
    assert db_session.scalars(select(CheckResult)).all() == []


def test_run_now_stores_a_result_and_is_audited(as_oncall, db_session):
    response = as_oncall.post("/health/dead_letters/run", headers=HX,
                              data={"csrf_token": as_oncall.csrf_token})
    assert response.status_code == 200
    assert "dead_letters: ok" in response.get_data(as_text=True)
    (result,) = db_session.scalars(select(CheckResult)).all()
    assert (result.check_id, result.status) == ("dead_letters", "ok")
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "health.check.run")).one()
    assert event.target_id == "dead_letters"


def test_running_an_unknown_check_is_a_404_with_a_message(as_oncall, db_session):
    response = as_oncall.post("/health/nope/run", headers=HX,
                              data={"csrf_token": as_oncall.csrf_token})
    assert response.status_code == 404 and "unknown check" in response.get_data(as_text=True)
    assert db_session.scalars(select(CheckResult)).all() == []
