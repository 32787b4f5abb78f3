import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from console.audit import Actor, AuditAction, Outcome, Target, record
from console.audit.models import AuditEvent
from console.flows.services import Flow, set_flow
from console.monitoring.changes import (
    CHANGES,
    NOT_CHANGES,
    REASON_SHOWN,
    ChangeFilter,
    ChangeKind,
    changes,
)

T0 = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
ONCALL = Actor.cli("oncall-ana")


def _seed_one_of_each(db) -> None:
    """Audit rows as the owning services write them, one minute apart, plus noise."""
    at = iter(T0 + dt.timedelta(minutes=m) for m in range(100))
    record(db, actor=Actor.system("startup"), action=AuditAction.DEPLOYMENT_ENVIRONMENT_RECORD,
           details={"environment": "sandbox"}, at=next(at))
    record(db, actor=ONCALL, action=AuditAction.AUTH_SESSION_LOGIN, at=next(at))
    set_flow(db, ONCALL, Flow.DECISIONING, enabled=False, reason="INC-7 issuer outage",
             revert_after=dt.timedelta(minutes=60), now=next(at))
    record(db, actor=ONCALL, action=AuditAction.KEYS_STATUS_VIEW, at=next(at))
    record(db, actor=Actor.cli("admin-bo"), action=AuditAction.DECISIONING_RULES_UPDATE,
           target=Target("decisioning_rules", "4"), details={"reason": "raise ATM cap"},
           before={"limit": 1}, after={"limit": 2}, at=next(at))
    record(db, actor=Actor.cli("admin-bo"), action=AuditAction.AUTH_ROLES_CHANGE,
           target=Target("user", "carl"), before={"roles": ["viewer"]},
           after={"roles": ["oncall"]}, at=next(at))
    record(db, actor=Actor.cli("admin-bo"), action=AuditAction.AUTH_BREAK_GLASS_CREATE,
           target=Target("user", "bg-1"), after={"roles": ["admin"]}, at=next(at))
    record(db, actor=ONCALL, action=AuditAction.PIPELINE_REPLAY_START,
           target=Target("replay_job", "12"),
           details={"criteria": {"message_id": None, "type": "presentment"},
                    "reason": "after fix", "total": 40}, at=next(at))
    record(db, actor=ONCALL, action=AuditAction.PIPELINE_REPLAY_START,
           target=Target("replay_job", "13"),
           details={"criteria": {"message_id": 991}, "reason": "dead letter fixed",
                    "total": 1}, at=next(at))
    record(db, actor=Actor.system("replay"), action=AuditAction.PIPELINE_REPLAY_COMPLETE,
           target=Target("replay_job", "12"), details={"requeued": 40, "total": 40},
           at=next(at))
    record(db, actor=ONCALL, action=AuditAction.AUDIT_LOG_VIEW, at=next(at))
    set_flow(db, ONCALL, Flow.DECISIONING, enabled=True, reason="INC-7 resolved", now=next(at))
    db.flush()


def test_every_change_appears_classified_newest_first_and_nothing_else(db_session):
    _seed_one_of_each(db_session)
    feed = changes(db_session, ChangeFilter(), with_audit=False)
    assert [(c.kind, c.summary) for c in feed] == [
        (ChangeKind.FLOW, "Turned decisioning on: INC-7 resolved"),
        (ChangeKind.REPLAY, "Replay #12 finished: 40 of 40 message(s) re-queued"),
        (ChangeKind.REPLAY, "Replayed message #991: dead letter fixed"),
        (ChangeKind.REPLAY, "Started replay #12 of 40 message(s): after fix"),
        (ChangeKind.CREDENTIAL, "Created break-glass account bg-1"),
        (ChangeKind.ACCESS, "Changed the roles of carl"),
        (ChangeKind.CONFIG, "Saved decisioning rules version 4: raise ATM cap"),
        (ChangeKind.FLOW, OFF_SENTENCE),
        (ChangeKind.CONFIG, "Recorded this database's environment: sandbox"),
    ]
    assert [c.seq for c in feed] == sorted((c.seq for c in feed), reverse=True)
    rules = feed[-3]
    assert (rules.actor_type, rules.actor_id, rules.at) == ("cli", "admin-bo",
                                                            T0 + dt.timedelta(minutes=4))


class _Off(str):
    """set_flow stamps its own time, so the auto-revert time in the sentence is not fixed."""

    def __eq__(self, other):
        return (isinstance(other, str) and other.startswith("Turned decisioning off until ")
                and other.endswith(" UTC: INC-7 issuer outage"))

    __hash__ = str.__hash__


OFF_SENTENCE = _Off("Turned decisioning off until … UTC: INC-7 issuer outage")


def test_each_change_links_its_object(db_session):
    _seed_one_of_each(db_session)
    links = {c.summary.split(":")[0]: c.link for c in
             changes(db_session, ChangeFilter(), with_audit=False)}
    assert links["Turned decisioning on"].endpoint == "flows.index"
    rules = links["Saved decisioning rules version 4"]
    assert (rules.endpoint, rules.anchor) == ("decisioning.rules", "version-4")
    replay = links["Started replay #12 of 40 message(s)"]
    assert (replay.endpoint, replay.anchor) == ("pipeline.replays", "replay-12")
    released = links["Replayed message #991"]
    assert (released.endpoint, released.values) == ("pipeline.message", {"message_id": 991})
    assert links["Changed the roles of carl"].endpoint == "users.index"
    assert links["Recorded this database's environment"] is None


def test_audit_details_only_for_those_who_may_read_the_audit_log(db_session):
    _seed_one_of_each(db_session)
    hidden = changes(db_session, ChangeFilter(kind=ChangeKind.ACCESS), with_audit=False)
    shown = changes(db_session, ChangeFilter(kind=ChangeKind.ACCESS), with_audit=True)
    assert [c.details for c in hidden] == [None]
    assert '"oncall"' in shown[0].details and '"viewer"' in shown[0].details
    assert "oncall" not in hidden[0].summary  # the new roles are audit detail


def test_filters_by_kind_and_window(db_session):
    _seed_one_of_each(db_session)
    flows = changes(db_session, ChangeFilter(kind=ChangeKind.FLOW), with_audit=False)
    assert {c.kind for c in flows} == {ChangeKind.FLOW} and len(flows) == 2
    # set_flow stamps the current time, long after T0.
    late = changes(db_session, ChangeFilter(since=T0 + dt.timedelta(minutes=9)),
                   with_audit=False)
    assert [c.summary.split(" until")[0].split(":")[0] for c in late] == [
        "Turned decisioning on", "Replay #12 finished", "Turned decisioning off"]
    assert changes(db_session, ChangeFilter(kind=ChangeKind.CONFIG,
                                            since=T0 + dt.timedelta(minutes=1)),
                   with_audit=False)[0].summary.startswith("Saved decisioning rules")


def test_keyset_pages_meet_without_gaps_or_repeats(db_session):
    _seed_one_of_each(db_session)
    everything = changes(db_session, ChangeFilter(), with_audit=False)
    first = changes(db_session, ChangeFilter(), with_audit=False, limit=4)
    second = changes(db_session, ChangeFilter(before_seq=first[-1].seq), with_audit=False,
                     limit=4)
    third = changes(db_session, ChangeFilter(before_seq=second[-1].seq), with_audit=False,
                    limit=4)
    assert [c.seq for c in first + second + third] == [c.seq for c in everything]


def test_unknown_actions_and_failed_attempts_are_not_changes(db_session):
    record(db_session, actor=ONCALL, action=AuditAction.AUTH_ACCESS_DENY,
           outcome=Outcome.DENIED, at=T0)
    record(db_session, actor=ONCALL, action=AuditAction.AUTH_BREAK_GLASS_UNLOCK,
           target=Target("user", "bg-1"), outcome=Outcome.FAILURE, at=T0)
    # A row whose action this release does not know (written by a newer one, say).
    unknown = SimpleNamespace(value="flows.switch.explode")
    record(db_session, actor=ONCALL, action=unknown, target=Target("flow", "decisioning"), at=T0)
    db_session.flush()
    assert db_session.scalar(select(func.count()).select_from(AuditEvent)) == 3
    assert changes(db_session, ChangeFilter(), with_audit=True) == []


def test_every_audit_action_is_either_a_change_or_deliberately_not():
    classified = set(CHANGES) | NOT_CHANGES
    assert not set(CHANGES) & NOT_CHANGES
    assert set(AuditAction) == classified, (
        f"classify {set(AuditAction) - classified} in console/monitoring/changes.py")


def test_a_long_reason_is_cut_in_the_sentence_but_kept_in_the_audit_row(db_session):
    reason = "x" * 400
    set_flow(db_session, ONCALL, Flow.PROCESSING, enabled=False, reason=reason, now=T0)
    db_session.flush()
    (change,) = changes(db_session, ChangeFilter(), with_audit=True)
    assert len(change.summary) < REASON_SHOWN + 40 and change.summary.endswith("…")
    assert reason in change.details


@pytest.mark.parametrize("kind", list(ChangeKind))
def test_each_kind_has_a_label_and_at_least_one_action(kind):
    assert kind.label
    assert ChangeFilter(kind=kind).actions()
