"""Rule configuration: validation, the console form, versions, audit, the per-process cache."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from console.audit import Actor
from console.audit.models import AuditEvent
from console.decisioning.config import (
    DEFAULT,
    ConfigConflict,
    ConfigInvalid,
    LimitPeriod,
    LimitScope,
    RuleConfig,
    active_config,
    document_from_form,
    history,
    save_config,
)

ADMIN = Actor.cli("admin-ada")


def test_the_defaults_are_in_force_until_the_first_change(db_session):
    assert active_config(db_session) == DEFAULT and DEFAULT.version == 0
    assert history(db_session) == []


@pytest.mark.parametrize(("document", "problem"), [
    ({"balance_enabled": "yes"}, "balance_enabled"),
    ({"blocked_mccs": ["79"]}, "four-digit MCCs"),
    ({"blocked_countries": "KP"}, "blocked_countries"),
    ({"velocity_max": 0}, "velocity_max"),
    ({"velocity_window_s": True}, "velocity_window_s"),
    ({"limits": [{"scope": "card", "period": "week", "currency": "EUR", "max_amount": 1}]},
     "period"),
    ({"limits": [{"scope": "card", "period": "day", "currency": "eur", "max_amount": 1}]},
     "currency"),
    ({"limits": [{"scope": "card", "period": "day", "currency": "EUR", "max_amount": -1}]},
     "max_amount"),
    ({"limits": [{"scope": "card", "period": "day", "currency": "EUR", "max_amount": 1}] * 2},
     "duplicates"),
    ({"timezone": "Nowhere/Atlantis"}, "timezone"),
])
def test_invalid_documents_name_the_problem(document, problem):
    with pytest.raises(ConfigInvalid) as refused:
        RuleConfig.from_document(document, 1)
    assert any(problem in p for p in refused.value.problems)


def test_a_document_round_trips():
    config = RuleConfig.from_document({
        "limits": [{"scope": "account", "period": "month", "currency": "EUR",
                    "max_amount": 900, "target": "7"}],
        "blocked_mccs": ["7995"], "timezone": "Europe/Berlin"}, 3)
    assert RuleConfig.from_document(config.as_document(), 3) == config
    assert config.limit(LimitScope.ACCOUNT, LimitPeriod.MONTH, "EUR", "7") == 900
    assert config.limit(LimitScope.ACCOUNT, LimitPeriod.MONTH, "EUR", "8") is None


def test_the_form_becomes_a_document():
    form = MultiDict({"balance_enabled": "on", "limits": "card day EUR 5000\n\n"
                      "# comment\naccount month EUR 90000 42  # the big one",
                      "blocked_mccs": "7995,6051 4829", "blocked_countries": "kp; ir",
                      "velocity_enabled": "on", "velocity_max": "12",
                      "velocity_window_s": "60", "timezone": "UTC"})
    document = document_from_form(form)
    assert document["limits"] == [
        {"scope": "card", "period": "day", "currency": "EUR", "max_amount": 5000},
        {"scope": "account", "period": "month", "currency": "EUR", "max_amount": 90000,
         "target": "42"}]
    assert document["blocked_mccs"] == ["7995", "6051", "4829"]
    assert document["blocked_countries"] == ["KP", "IR"]
    assert document["limits_enabled"] is False and document["balance_enabled"] is True


def test_saving_adds_an_audited_version(db_session):
    first = save_config(db_session, ADMIN, {"blocked_countries": ["KP"]}, reason="CHG-1")
    second = save_config(db_session, ADMIN, {"blocked_countries": []}, reason="CHG-2",
                         expected_version=1)
    assert (first.version, second.version) == (1, 2)
    assert active_config(db_session).blocked_countries == frozenset()
    assert [v.reason for v in history(db_session)] == ["CHG-2", "CHG-1"]
    events = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "decisioning.rules.update").order_by(AuditEvent.seq)).all()
    assert [e.target_id for e in events] == ["1", "2"] and "KP" in events[1].details


def test_a_save_needs_a_reason_and_the_current_version(db_session):
    with pytest.raises(ConfigInvalid, match="reason"):
        save_config(db_session, ADMIN, {}, reason="  ")
    save_config(db_session, ADMIN, {}, reason="first")
    with pytest.raises(ConfigConflict):
        save_config(db_session, ADMIN, {}, reason="stale", expected_version=0)


def test_a_version_rolled_back_never_serves_its_document_later(db_session):
    with db_session.begin_nested() as attempt:
        save_config(db_session, ADMIN, {"blocked_mccs": ["7995"]}, reason="abandoned")
        assert active_config(db_session).blocked_mccs == {"7995"}  # cached in this process
        attempt.rollback()
    save_config(db_session, ADMIN, {"blocked_mccs": ["6051"]}, reason="the real version 1")
    assert active_config(db_session).blocked_mccs == {"6051"}
