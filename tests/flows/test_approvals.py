"""Four-eyes kill switches: a request by one person, decided by another; expiry is audited."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction
from console.audit.models import AuditEvent
from console.flows.approvals import Decision, change, decide, expire_due, pending
from console.flows.models import RequestStatus
from console.flows.services import Flow, FlowChangeRefused, get_state, is_enabled
from console.flows.settings import FlowsSettings
from console.security.permissions import Role
from console.settings import ConfigError, Settings
from tests.support.console_users import add_console_user

REQUESTER = Actor.cli("anna")
APPROVER = Actor.cli("bob")
POLICY = FlowsSettings(require_approval=frozenset({"decisioning"}), approval_minutes=30)
NOW = dt.datetime(2026, 12, 7, 7, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _deciders(db_session):
    """bob and carol are on-call engineers with console accounts (a decider must have one)."""
    for name in ("bob", "carol"):
        add_console_user(db_session, name, Role.ONCALL)


def _events(db_session, action):
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.seq)))


def _request(db_session, **kwargs):
    values = dict(enabled=False, reason="INC-12 issuer outage", policy=POLICY, now=NOW)
    values.update(kwargs)
    return change(db_session, REQUESTER, Flow.DECISIONING, **values).request


def test_a_flow_without_four_eyes_changes_at_once(db_session):
    result = change(db_session, REQUESTER, Flow.PROCESSING, enabled=False, reason="INC-1",
                    policy=POLICY, now=NOW)
    assert result.request is None and not result.state.enabled
    assert not is_enabled(db_session, Flow.PROCESSING)


def test_a_four_eyes_change_is_a_request_and_changes_nothing_yet(db_session):
    request = _request(db_session, revert_after=dt.timedelta(minutes=60))
    assert request.status == RequestStatus.PENDING and request.requested_by == "anna"
    assert request.expires_at == NOW + dt.timedelta(minutes=30)
    assert is_enabled(db_session, Flow.DECISIONING)
    assert pending(db_session, NOW) == [request]
    (event,) = _events(db_session, AuditAction.FLOW_CHANGE_REQUEST)
    assert event.actor_id == "anna" and "INC-12" in event.details


def test_another_person_approves_and_the_change_is_applied_with_both_names(db_session):
    request = _request(db_session, revert_after=dt.timedelta(minutes=60))
    later = NOW + dt.timedelta(minutes=5)
    result = decide(db_session, APPROVER, request.id, Decision.APPROVE, now=later)
    assert request.status == RequestStatus.APPROVED and request.decided_by == "bob"
    state = get_state(db_session, Flow.DECISIONING)
    assert not state.enabled and result.state == state
    assert (state.changed_by, state.approved_by) == ("anna", "bob")
    assert state.revert_at == later + dt.timedelta(minutes=60)
    (applied,) = _events(db_session, AuditAction.FLOW_SWITCH_DISABLE)
    assert applied.actor_id == "bob"
    assert '"requested_by":"anna"' in applied.details and '"approved_by":"bob"' in applied.details
    assert '"before":true' in applied.details and "INC-12" in applied.details
    assert _events(db_session, AuditAction.FLOW_CHANGE_APPROVE)


@pytest.mark.parametrize("decision", [Decision.APPROVE, Decision.REJECT])
@pytest.mark.parametrize("who", ["anna", "Anna", " ANNA "])
def test_the_requester_can_never_decide_their_own_request(db_session, decision, who):
    request = _request(db_session)
    with pytest.raises(FlowChangeRefused, match="second person"):
        decide(db_session, Actor.cli(who), request.id, decision, now=NOW)
    assert request.status == RequestStatus.PENDING
    assert is_enabled(db_session, Flow.DECISIONING)


def test_a_rejected_request_changes_nothing_and_cannot_be_approved_later(db_session):
    request = _request(db_session)
    decide(db_session, APPROVER, request.id, Decision.REJECT, now=NOW)
    assert request.status == RequestStatus.REJECTED and is_enabled(db_session, Flow.DECISIONING)
    with pytest.raises(FlowChangeRefused, match="already rejected"):
        decide(db_session, Actor.cli("carol"), request.id, Decision.APPROVE, now=NOW)
    assert _events(db_session, AuditAction.FLOW_CHANGE_REJECT)


def test_only_the_requester_cancels(db_session):
    request = _request(db_session)
    with pytest.raises(FlowChangeRefused, match="only anna"):
        decide(db_session, APPROVER, request.id, Decision.CANCEL, now=NOW)
    decide(db_session, REQUESTER, request.id, Decision.CANCEL, now=NOW)
    assert request.status == RequestStatus.CANCELLED
    assert _events(db_session, AuditAction.FLOW_CHANGE_CANCEL)


def test_one_waiting_request_per_flow(db_session):
    _request(db_session)
    with pytest.raises(FlowChangeRefused, match="already waiting"):
        change(db_session, APPROVER, Flow.DECISIONING, enabled=False, reason="me too",
               policy=POLICY, now=NOW)


def test_unknown_request_and_bad_input_are_refused(db_session):
    with pytest.raises(FlowChangeRefused, match="no change request"):
        decide(db_session, APPROVER, 999_999, Decision.APPROVE, now=NOW)
    with pytest.raises(FlowChangeRefused, match="reason"):
        _request(db_session, reason="  ")


def test_a_request_expires_after_its_window_audited_and_can_no_longer_be_approved(db_session):
    request = _request(db_session)
    assert expire_due(db_session, NOW + dt.timedelta(minutes=29)) == []
    after = NOW + dt.timedelta(minutes=30)
    assert pending(db_session, after) == []
    with pytest.raises(FlowChangeRefused, match="expired"):
        decide(db_session, APPROVER, request.id, Decision.APPROVE, now=after)
    assert expire_due(db_session, after) == [request.id]
    assert (request.status, request.decided_by) == (RequestStatus.EXPIRED, "scheduler")
    (event,) = _events(db_session, AuditAction.FLOW_CHANGE_EXPIRE)
    assert event.actor_type == "system" and '"requested_by":"anna"' in event.details
    assert is_enabled(db_session, Flow.DECISIONING)


def test_an_expired_request_does_not_block_a_new_one(db_session):
    first = _request(db_session)
    second = _request(db_session, now=NOW + dt.timedelta(minutes=31))
    assert first.status == RequestStatus.EXPIRED and second.status == RequestStatus.PENDING


def test_the_setting_names_flows_and_refuses_unknown_ones():
    base = {"CONSOLE_ENVIRONMENT": "sandbox", "CONSOLE_MODE": "test"}
    settings = Settings.from_env({**base, "FLOWS_REQUIRE_APPROVAL": "decisioning, ledger_posting",
                                  "FLOWS_APPROVAL_MINUTES": "15"})
    assert settings.flows.require_approval == {"decisioning", "ledger_posting"}
    assert settings.flows.approval_minutes == 15
    assert Settings.from_env(base).flows.require_approval == frozenset()
    assert Settings.from_env({**base, "FLOWS_REQUIRE_APPROVAL": "all"}).flows.require_approval \
        == {flow.value for flow in Flow}
    assert Settings.from_env({**base, "FLOWS_REQUIRE_APPROVAL": "none"}).flows \
        .require_approval == frozenset()
    with pytest.raises(ConfigError, match="FLOWS_REQUIRE_APPROVAL: 'everything'"):
        Settings.from_env({**base, "FLOWS_REQUIRE_APPROVAL": "everything"})
    with pytest.raises(ConfigError, match="FLOWS_APPROVAL_MINUTES"):
        Settings.from_env({**base, "FLOWS_APPROVAL_MINUTES": "0"})


def test_a_request_racing_another_for_the_same_flow_is_refused_not_an_error(db_session,
                                                                          monkeypatch):
    from console.flows import approvals

    first = _request(db_session)
    # The second request's lookup ran before the first committed: it saw nothing waiting.
    real_scalar = db_session.scalar
    monkeypatch.setattr(db_session, "scalar", lambda statement: None
                        if "flow_change_request" in str(statement) else real_scalar(statement))
    with pytest.raises(FlowChangeRefused, match="at the same time"):
        approvals.change(db_session, APPROVER, Flow.DECISIONING, enabled=False, reason="me too",
                         policy=POLICY, now=NOW)
    monkeypatch.undo()
    assert pending(db_session, NOW) == [first]


@pytest.mark.parametrize("who, refusal", [
    ("dave", "not a console user"),  # a shell account nobody mapped to a console user
    ("vera", "does not hold the kill_switches permission"),  # a viewer
    ("olga", "is disabled"),
])
def test_only_a_console_user_holding_kill_switches_can_decide(db_session, who, refusal):
    add_console_user(db_session, "vera", Role.VIEWER)
    add_console_user(db_session, "olga", Role.ONCALL, disabled=True)
    request = _request(db_session)
    for decision in (Decision.APPROVE, Decision.REJECT):
        with pytest.raises(FlowChangeRefused, match=refusal):
            decide(db_session, Actor.cli(who), request.id, decision, now=NOW)
    assert request.status == RequestStatus.PENDING and is_enabled(db_session, Flow.DECISIONING)
    assert not _events(db_session, AuditAction.FLOW_CHANGE_APPROVE)


def test_a_system_actor_never_decides(db_session):
    request = _request(db_session)
    with pytest.raises(FlowChangeRefused, match="a person must"):
        decide(db_session, Actor.system("bob"), request.id, Decision.APPROVE, now=NOW)


def test_a_second_approval_is_refused_and_the_change_applied_once(db_session):
    request = _request(db_session)
    decide(db_session, APPROVER, request.id, Decision.APPROVE, now=NOW)
    with pytest.raises(FlowChangeRefused, match="already approved"):
        decide(db_session, Actor.cli("carol"), request.id, Decision.APPROVE, now=NOW)
    assert len(_events(db_session, AuditAction.FLOW_SWITCH_DISABLE)) == 1
    assert len(_events(db_session, AuditAction.FLOW_CHANGE_APPROVE)) == 1
