"""The reveal kill switch's guard (issue 12): refused for everyone while the flow is off.

The reveal itself comes with issue 14; until then a test-only route stands in for it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.flows.guard import flow_required
from console.flows.services import Flow, FlowSwitchedOff, require_enabled, set_flow
from console.security.permissions import Permission, require

SYSTEM = Actor.system("test")


def test_require_enabled_passes_while_on_and_refuses_while_off(db_session):
    require_enabled(db_session, Flow.REVEAL)  # no switch row: the flow's default, on
    set_flow(db_session, SYSTEM, Flow.REVEAL, enabled=False, reason="INC-9 key rotation")
    with pytest.raises(FlowSwitchedOff, match="refused for everyone") as refused:
        require_enabled(db_session, Flow.REVEAL)
    assert refused.value.flow is Flow.REVEAL
    require_enabled(db_session, Flow.DECISIONING)  # only the flow that is off
    set_flow(db_session, SYSTEM, Flow.REVEAL, enabled=True, reason="done")
    require_enabled(db_session, Flow.REVEAL)


@pytest.fixture
def guarded(app):
    """A tiny route guarded like the reveal will be (registered before the first request)."""

    @require(Permission.VIEW_PANELS)
    @flow_required(Flow.REVEAL)
    def reveal_stand_in():
        return "revealed"

    app.add_url_rule("/test-only/reveal", "test_only_reveal", reveal_stand_in,
                     methods=["GET", "POST"])
    return app


@pytest.mark.parametrize("persona", ["viewer", "admin"])
def test_the_guard_refuses_everyone_while_the_flow_is_off(guarded, sign_in, db_session,
                                                            persona):
    client = sign_in(guarded.test_client(), persona)
    assert client.get("/test-only/reveal").get_data(as_text=True) == "revealed"
    set_flow(db_session, SYSTEM, Flow.REVEAL, enabled=False, reason="INC-9 key rotation")
    db_session.commit()
    response = client.get("/test-only/reveal")
    assert response.status_code == 423
    body = response.get_data(as_text=True)
    assert "revealed" not in body and "switched off (kill switch)" in body
    db_session.expire_all()
    denial = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "auth.access.deny")).one()
    assert denial.outcome == "denied" and denial.actor_id == persona
    details = json.loads(denial.details)
    assert (details["permission"], details["status"], details["path"]) == (
        "flow:reveal", 423, "/test-only/reveal")
    set_flow(db_session, SYSTEM, Flow.REVEAL, enabled=True, reason="done")
    db_session.commit()
    assert client.get("/test-only/reveal").status_code == 200


def test_an_anonymous_request_is_refused_for_sign_in_first(guarded, client, db_session):
    set_flow(db_session, SYSTEM, Flow.REVEAL, enabled=False, reason="INC-9 key rotation")
    db_session.commit()
    response = client.post("/test-only/reveal")
    assert response.status_code in (401, 403)  # not 423: the flow tells no one who is not in
