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


def test_the_revert_is_audited_as_the_schedulers_change(db_session):
    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
    set_flow(db_session, ONCALL, Flow.REVEAL, enabled=False, reason="INC-5",
             revert_after=dt.timedelta(minutes=15), now=now)
    revert_due(db_session, now + dt.timedelta(minutes=15))
    event = db_session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert (event.action, event.actor_type, event.actor_id) == (
        "flows.switch.enable", "system", "scheduler")
    assert "automatic revert scheduled by oncall-anna" in event.details


def test_one_audited_warning_before_an_auto_revert_per_change(db_session, caplog):
    from console.flows.services import REVERT_WARNING, warn_due_reverts

    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
    set_flow(db_session, ONCALL, Flow.DECISIONING, enabled=False, reason="INC-6",
             revert_after=dt.timedelta(minutes=30), now=now)
    revert_at = now + dt.timedelta(minutes=30)
    assert warn_due_reverts(db_session, revert_at - REVERT_WARNING - dt.timedelta(seconds=1)) \
        == []
    assert not get_state(db_session, Flow.DECISIONING).revert_soon(
        revert_at - REVERT_WARNING - dt.timedelta(seconds=1))
    with caplog.at_level("WARNING", logger="console.flows.services"):
        assert warn_due_reverts(db_session, revert_at - REVERT_WARNING) == [Flow.DECISIONING]
    assert "decisioning turns back on by itself" in caplog.text
    assert get_state(db_session, Flow.DECISIONING).revert_soon(revert_at - REVERT_WARNING)
    assert warn_due_reverts(db_session, revert_at - dt.timedelta(minutes=1)) == []  # once
    warnings = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "flows.switch.revert_warn")).all()
    assert len(warnings) == 1 and warnings[0].actor_id == "scheduler"
    assert "INC-6" in warnings[0].details
    # A new change (new revert time) gets its own warning.
    set_flow(db_session, ONCALL, Flow.DECISIONING, enabled=False, reason="INC-6 extended",
             revert_after=dt.timedelta(minutes=10), now=revert_at - dt.timedelta(minutes=1))
    assert warn_due_reverts(db_session, revert_at + dt.timedelta(minutes=5)) == [Flow.DECISIONING]


def test_the_scheduler_job_reverts_warns_and_expires(db_session):
    from console.flows.approvals import change
    from console.flows.settings import FlowsSettings
    from console.scheduler.registry import JOBS

    jobs = {job.name: job for job in JOBS}
    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
    set_flow(db_session, ONCALL, Flow.CARD_ACTIONS, enabled=False, reason="INC-7",
             revert_after=dt.timedelta(minutes=3), now=now)
    system = Actor.system("scheduler")
    assert jobs["flows.auto_revert"].run(db_session, system, now) == "warned card_actions"
    assert jobs["flows.auto_revert"].run(db_session, system, now + dt.timedelta(minutes=3)) \
        == "reverted card_actions"
    assert jobs["flows.auto_revert"].run(db_session, system, now) == "nothing due"
    request = change(db_session, ONCALL, Flow.REVEAL, enabled=False, reason="INC-8", now=now,
                     policy=FlowsSettings(require_approval=frozenset({"reveal"}))).request
    expire = jobs["flows.expire_requests"].run
    assert expire(db_session, system, now) == "nothing due"
    assert expire(db_session, system, now + dt.timedelta(hours=1)) == f"expired #{request.id}"
