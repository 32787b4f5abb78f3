"""Alerting on state changes: threshold, repeat, recovery, dependencies, snooze expiry."""

import datetime as dt

import pytest
from sqlalchemy import select

from console.audit.actions import AuditAction
from console.audit.models import AuditEvent
from console.audit.services import Actor
from console.checks.alerts import Kind
from console.checks.models import CheckResult, CheckState
from console.checks.services import CheckRefused, run_checks, snooze
from tests.checks.conftest import T0

MINUTE = dt.timedelta(minutes=1)


def _run(db_session, check_settings, checks, at):
    return run_checks(db_session, check_settings, at, checks)


def _kinds(report, check_id="card_api"):
    return [n.kind for n in report.notifications if n.check_id == check_id]


def test_a_failure_alerts_only_after_n_consecutive_failures(db_session, check_settings,
                                                             fake_checks):
    _db, api, checks = fake_checks
    api.ok = False
    kinds = [_kinds(_run(db_session, check_settings, checks, T0 + i * MINUTE)) for i in range(4)]
    assert kinds == [[], [], [Kind.FAILING], []]
    state = db_session.get(CheckState, "card_api")
    assert state.alerting and state.consecutive_failures == 4


def test_an_ok_between_failures_restarts_the_count(db_session, check_settings, fake_checks):
    _db, api, checks = fake_checks
    for i, ok in enumerate([False, False, True, False, False]):
        api.ok = ok
        assert _kinds(_run(db_session, check_settings, checks, T0 + i * MINUTE)) == []


def test_still_failing_repeats_every_repeat_interval(db_session, check_settings, fake_checks):
    _db, api, checks = fake_checks
    api.ok = False
    for i in range(3):
        _run(db_session, check_settings, checks, T0 + i * MINUTE)
    assert _kinds(_run(db_session, check_settings, checks, T0 + 31 * MINUTE)) == []
    assert _kinds(_run(db_session, check_settings, checks, T0 + 32 * MINUTE)) == [Kind.REPEAT]
    assert _kinds(_run(db_session, check_settings, checks, T0 + 33 * MINUTE)) == []


def test_recovery_is_notified_once_after_a_notified_failure(db_session, check_settings,
                                                            fake_checks):
    _db, api, checks = fake_checks
    api.ok = False
    for i in range(3):
        _run(db_session, check_settings, checks, T0 + i * MINUTE)
    api.ok = True
    assert _kinds(_run(db_session, check_settings, checks, T0 + 3 * MINUTE)) == [Kind.RECOVERED]
    assert _kinds(_run(db_session, check_settings, checks, T0 + 4 * MINUTE)) == []
    state = db_session.get(CheckState, "card_api")
    assert not state.alerting and state.consecutive_failures == 0


def test_a_failing_database_silences_the_checks_that_need_it(db_session, check_settings,
                                                             fake_checks):
    db, api, checks = fake_checks
    db.ok = api.ok = False
    reports = [_run(db_session, check_settings, checks, T0 + i * MINUTE) for i in range(5)]
    assert api.calls == 0  # never even probed
    assert all(_kinds(r) == [] for r in reports)
    assert [n.kind for n in reports[2].notifications] == [Kind.FAILING]  # the database only
    statuses = set(db_session.scalars(select(CheckResult.status)
                                      .where(CheckResult.check_id == "card_api")))
    assert statuses == {"skipped"}


def test_a_snooze_holds_back_alerts_until_it_expires(db_session, check_settings, fake_checks):
    _db, api, checks = fake_checks
    snooze(db_session, Actor.system("test"), "card_api", reason="INC-9 FINCI maintenance",
           until=T0 + 10 * MINUTE, now=T0)
    api.ok = False
    held = [_kinds(_run(db_session, check_settings, checks, T0 + i * MINUTE)) for i in range(10)]
    assert held == [[]] * 10
    # The snooze has lapsed and the check still fails: the alert goes out now.
    assert _kinds(_run(db_session, check_settings, checks, T0 + 10 * MINUTE)) == [Kind.FAILING]
    state = db_session.get(CheckState, "card_api")
    assert state.snoozed_until is None and state.snooze_reason is None


def test_a_snooze_is_audited_with_its_reason_and_expiry(db_session):
    snooze(db_session, Actor.system("test"), "card_api", reason="INC-9 FINCI maintenance",
           until=T0 + 10 * MINUTE, now=T0)
    event = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.HEALTH_CHECK_SNOOZE.value)).one()
    assert event.target_id == "card_api"
    assert "INC-9 FINCI maintenance" in event.details and (T0 + 10 * MINUTE).isoformat() in \
        event.details


@pytest.mark.parametrize(("check_id", "reason", "until", "message"), [
    ("card_api", "", T0 + MINUTE, "reason"),
    ("card_api", "x" * 501, T0 + MINUTE, "too long"),
    ("card_api", "maintenance", T0, "future"),
    ("card_api", "maintenance", T0 + dt.timedelta(days=8), "7 days"),
    ("no_such_check", "maintenance", T0 + MINUTE, "unknown check"),
])
def test_a_snooze_without_reason_or_proper_expiry_is_refused(db_session, check_id, reason,
                                                              until, message):
    with pytest.raises(CheckRefused, match=message):
        snooze(db_session, Actor.system("test"), check_id, reason=reason, until=until, now=T0)
    assert db_session.scalars(select(CheckState)).all() == []


def test_a_probe_that_raises_is_a_failing_result_not_a_broken_run(db_session, check_settings,
                                                                   fake_checks):
    _db, _api, checks = fake_checks

    def boom(_ctx):
        raise RuntimeError("secret-token-in-message")

    from console.checks.registry import Check

    checks.append(Check("boom", "Boom", MINUTE, boom))
    report = _run(db_session, check_settings, checks, T0)
    ran = {r.check.id: r for r in report.ran}
    assert ran["boom"].status == "failing" and "RuntimeError" in ran["boom"].detail
    assert "secret-token" not in ran["boom"].detail
    assert ran["card_api"].status == "ok"
