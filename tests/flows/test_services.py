import datetime as dt

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.flows.services import (
    Flow,
    FlowChangeRefused,
    all_states,
    get_state,
    is_enabled,
    revert_due,
    set_flow,
)

ONCALL = Actor.cli("oncall-anna")


def test_flows_are_enabled_until_someone_disables_them(db_session):
    assert all(state.enabled for state in all_states(db_session))
    assert is_enabled(db_session, Flow.DECISIONING)


def test_disabling_a_flow_is_audited_with_reason_and_before_after(db_session):
    state = set_flow(db_session, ONCALL, Flow.DECISIONING, enabled=False,
                     reason="issuer incident INC-42")
    assert not state.enabled and not is_enabled(db_session, Flow.DECISIONING)
    event = db_session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert event.action == "flows.switch.disable"
    assert event.target_id == "decisioning" and event.actor_id == "oncall-anna"
    assert '"before":true' in event.details and "INC-42" in event.details


@pytest.mark.parametrize(("reason", "revert"), [
    ("", None), ("   ", None), ("x" * 501, None),
    ("ok", dt.timedelta(0)), ("ok", dt.timedelta(days=8)),
])
def test_bad_changes_are_refused_and_change_nothing(db_session, reason, revert):
    with pytest.raises(FlowChangeRefused):
        set_flow(db_session, ONCALL, Flow.PROCESSING, enabled=False, reason=reason,
                 revert_after=revert)
    assert is_enabled(db_session, Flow.PROCESSING)


def test_auto_revert_turns_the_flow_back_on_when_due(db_session):
    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
    set_flow(db_session, ONCALL, Flow.CARD_ACTIONS, enabled=False, reason="FINCI API down",
             revert_after=dt.timedelta(minutes=30), now=now)
    assert revert_due(db_session, now + dt.timedelta(minutes=29)) == []
    assert revert_due(db_session, now + dt.timedelta(minutes=30)) == [Flow.CARD_ACTIONS]
    state = get_state(db_session, Flow.CARD_ACTIONS)
    assert state.enabled and state.changed_by == "scheduler" and state.revert_at is None
