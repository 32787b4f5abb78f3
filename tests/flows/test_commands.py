"""``flask --app wsgi flows …``: the same rules as the page, the OS user as the actor, --json,
exit 1 with the reason on refusal and never a traceback."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.flows.services import Flow, get_state, is_enabled
from console.security.permissions import Role
from tests.support.console_users import add_console_user


@pytest.fixture
def as_user(monkeypatch, db_session):
    # bob is an on-call engineer with a console account: the one a shell approval maps to.
    add_console_user(db_session, "bob", Role.ONCALL)

    def become(name: str) -> None:
        monkeypatch.setattr("console.cli.os_user", lambda: name)

    become("anna")
    return become


@pytest.fixture
def four_eyes(app):
    settings = app.extensions["settings"]
    app.extensions["settings"] = settings.replace(flows=replace(
        settings.flows, require_approval=frozenset({"decisioning", "processing"})))


def _last_event(db_session):
    db_session.expire_all()
    return db_session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()


def test_disable_and_enable_as_the_os_user_audited(cli, as_user, db_session):
    result, state = cli("flows", "disable", "card_actions", "--reason", "INC-3 API down",
                        "--revert-minutes", "30", "--json")
    assert result.exit_code == 0, result.output
    assert (state["flow"], state["enabled"], state["changed_by"]) == ("card_actions", False,
                                                                      "anna")
    assert state["revert_at"] is not None
    assert not is_enabled(db_session, Flow.CARD_ACTIONS)
    event = _last_event(db_session)
    assert (event.action, event.actor_type, event.actor_id) == ("flows.switch.disable", "cli",
                                                                "anna")
    result, state = cli("flows", "enable", "card_actions", "--reason", "fixed", "--json")
    assert result.exit_code == 0 and state["enabled"] is True


def test_list_shows_every_flow_and_waiting_requests(cli, as_user, four_eyes):
    cli("flows", "disable", "decisioning", "--reason", "INC-4")
    result, listing = cli("flows", "list", "--json")
    assert result.exit_code == 0
    assert [s["flow"] for s in listing["flows"]] == [f.value for f in Flow]
    assert [(r["flow"], r["requested_by"]) for r in listing["requests"]] == [
        ("decisioning", "anna")]
    result, _ = cli("flows", "list")
    assert "decisioning     ON" in result.output and "request #" in result.output


def test_four_eyes_from_the_shell_needs_a_different_os_user(cli, as_user, four_eyes,
                                                            db_session):
    result, request = cli("flows", "disable", "decisioning", "--reason", "INC-5", "--json")
    assert result.exit_code == 0 and request["status"] == "pending"
    assert is_enabled(db_session, Flow.DECISIONING)
    result, refused = cli("flows", "approve", str(request["request"]), "--json")
    assert result.exit_code == 1 and "second person" in refused["error"]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    as_user("bob")
    result, approved = cli("flows", "approve", str(request["request"]), "--json")
    assert result.exit_code == 0, result.output
    assert approved["status"] == "approved" and approved["state"]["enabled"] is False
    state = get_state(db_session, Flow.DECISIONING)
    assert (state.changed_by, state.approved_by) == ("anna", "bob")
    event = _last_event(db_session)
    assert event.action == "flows.switch.disable" and event.actor_id == "bob"


def test_reject_and_cancel(cli, as_user, four_eyes, db_session):
    _, first = cli("flows", "disable", "decisioning", "--reason", "INC-6", "--json")
    result, _ = cli("flows", "cancel", str(first["request"]))
    assert result.exit_code == 0 and "cancelled" in result.output
    _, second = cli("flows", "disable", "decisioning", "--reason", "INC-6 again", "--json")
    as_user("bob")
    result, rejected = cli("flows", "reject", str(second["request"]), "--json")
    assert result.exit_code == 0 and rejected["status"] == "rejected"
    assert is_enabled(db_session, Flow.DECISIONING)


@pytest.mark.parametrize("args", [
    ("flows", "disable", "decisioning", "--reason", "  "),
    ("flows", "approve", "424242"),
])
def test_refusals_exit_1_with_a_clear_message(cli, as_user, args):
    result, _ = cli(*args)
    assert result.exit_code == 1 and result.output.startswith("refused: ")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [
    ("flows", "disable", "everything", "--reason", "x"),
    ("flows", "disable", "decisioning"),
    ("flows", "disable", "decisioning", "--reason", "x", "--revert-minutes", "0"),
    ("flows", "approve", "abc"),
])
def test_bad_usage_exits_2(cli, as_user, args):
    result, _ = cli(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_pipeline_pause_follows_the_same_rules(cli, as_user, four_eyes, db_session):
    result, request = cli("pipeline", "pause", "--reason", "INC-7", "--json")
    assert result.exit_code == 0 and request["status"] == "pending"
    assert is_enabled(db_session, Flow.PROCESSING)


def test_a_shell_approval_needs_a_console_account_holding_kill_switches(cli, as_user,
                                                                        four_eyes, db_session):
    add_console_user(db_session, "vera", Role.VIEWER)
    _, request = cli("flows", "disable", "decisioning", "--reason", "INC-8", "--json")
    for who, refusal in (("root", "not a console user"),
                         ("vera", "does not hold the kill_switches permission")):
        as_user(who)
        result, refused = cli("flows", "approve", str(request["request"]), "--json")
        assert result.exit_code == 1 and refusal in refused["error"]
    assert is_enabled(db_session, Flow.DECISIONING)


def test_the_shell_user_comes_from_the_process_not_the_environment(monkeypatch):
    import pwd

    from console.cli import cli_actor

    monkeypatch.setenv("USER", "bob")
    monkeypatch.setenv("LOGNAME", "bob")
    assert cli_actor().id == pwd.getpwuid(os.geteuid()).pw_name
