import datetime as dt

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.flows.services import Flow, is_enabled
from console.settings import Environment


def _turn_off(client, flow="decisioning", **form):
    data = {"csrf_token": client.csrf_token, "enabled": "false", "reason": "INC-7 issuer outage"}
    data.update(form)
    return client.post(f"/flows/{flow}", data=data, headers={"HX-Request": "true"})


def test_every_panel_role_sees_the_switches(as_viewer):
    page = as_viewer.get("/flows/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Decisioning" in body and "Turn off" not in body  # viewers cannot flip


def test_every_flow_is_listed_with_what_happens_while_it_is_off(as_viewer):
    from console.flows.services import OFF_BEHAVIOUR

    body = as_viewer.get("/flows/").get_data(as_text=True)
    for flow in Flow:
        assert f'data-flow="{flow.value}"' in body
        assert OFF_BEHAVIOUR[flow] in body


def test_oncall_turns_a_flow_off_with_a_reason_and_it_is_audited(as_oncall, db_session):
    response = _turn_off(as_oncall, revert_minutes="60")
    assert response.status_code == 200
    assert "OFF" in response.get_data(as_text=True)
    assert not is_enabled(db_session, Flow.DECISIONING)
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "flows.switch.disable")).one()
    assert event.actor_type == "user" and event.target_id == "decisioning"


def test_operators_cannot_flip_switches(as_operator, db_session):
    assert _turn_off(as_operator).status_code == 403
    assert is_enabled(db_session, Flow.DECISIONING)


@pytest.mark.parametrize(("form", "status"), [
    ({"reason": ""}, 422), ({"enabled": "maybe"}, 400), ({"revert_minutes": "7"}, 400),
])
def test_bad_input_is_refused_and_changes_nothing(as_oncall, db_session, form, status):
    assert _turn_off(as_oncall, **form).status_code == status
    assert is_enabled(db_session, Flow.DECISIONING)


def test_unknown_flow_is_404(as_oncall):
    assert _turn_off(as_oncall, flow="everything").status_code == 404


def test_production_requires_a_recent_login(app, settings, test_database, sign_in, db_session):
    from console import create_app

    production = create_app(settings.replace(environment=Environment.PRODUCTION),
                            database=test_database)
    production.test_client_class = app.test_client_class
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    client = sign_in(production.test_client(), "oncall", auth_time=stale)
    response = _turn_off(client)
    assert response.status_code == 401
    assert is_enabled(db_session, Flow.DECISIONING)
    fresh = sign_in(production.test_client(), "oncall")
    assert _turn_off(fresh).status_code == 200
