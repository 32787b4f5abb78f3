"""CLI: replay preview/start/status/cancel and the pause switch, each with --json."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from console.audit import AuditAction
from console.audit.models import AuditEvent
from console.flows.services import Flow, is_enabled


def test_replay_preview_start_status_and_cancel(cli, store, db_session):
    for _ in range(3):
        store("refund")
    result, preview = cli("replay", "preview", "--type", "refund", "--json")
    assert result.exit_code == 0, result.output
    assert (preview["total"], preview["noops"]) == (3, 3)  # no refund handler yet
    result, job = cli("replay", "start", "--type", "refund", "--reason", "after fix", "--json")
    assert result.exit_code == 0, result.output
    assert (job["total"], job["status"]) == (3, "pending")
    result, status = cli("replay", "status", str(job["id"]), "--json")
    assert status["jobs"][0]["id"] == job["id"]
    result, listing = cli("replay", "status", "--json")
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]
    result, cancelled = cli("replay", "cancel", str(job["id"]), "--json")
    assert cancelled["status"] == "cancelled"
    result, refused = cli("replay", "cancel", str(job["id"]), "--json")
    assert result.exit_code == 1 and "already cancelled" in refused["error"]
    actions = set(db_session.scalars(select(AuditEvent.action)))
    assert {AuditAction.PIPELINE_REPLAY_START, AuditAction.PIPELINE_REPLAY_CANCEL} <= actions


def test_replay_start_refusals_exit_1_with_the_reason(cli, store):
    store("refund")
    result, refused = cli("replay", "start", "--type", "nothing", "--reason", "x", "--json")
    assert result.exit_code == 1
    assert refused == {"error": "no message matches these filters"}


@pytest.mark.parametrize("args", [["--since", "yesterday"], ["--status", "processing"]])
def test_replay_bad_filters_are_usage_errors(cli, args):
    result, _ = cli("replay", "preview", *args)
    assert result.exit_code == 2


def test_human_output_without_json(cli, store):
    store("refund")
    result, _ = cli("replay", "preview", "--type", "refund")
    assert "1 messages match; 1 would be no-ops" in result.output


def test_pause_and_resume_are_audited_and_status_shows_the_backlog(cli, store, db_session):
    store("presentment")
    result, paused = cli("pipeline", "pause", "--reason", "INC-9", "--json")
    assert result.exit_code == 0 and paused["processing"] == "paused"
    assert not is_enabled(db_session, Flow.PROCESSING)
    result, status = cli("pipeline", "status", "--json")
    assert status["processing"] == "paused" and status["by_status"]["pending"] == 1
    assert status["paused_reason"] == "INC-9"
    result, resumed = cli("pipeline", "resume", "--reason", "fixed", "--json")
    assert resumed["processing"] == "running"
    actions = [e.action for e in db_session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    assert AuditAction.FLOW_SWITCH_DISABLE in actions and AuditAction.FLOW_SWITCH_ENABLE in actions


def test_a_pause_needs_a_reason(cli):
    result, _ = cli("pipeline", "pause", "--reason", " ", "--json")
    assert result.exit_code == 1
