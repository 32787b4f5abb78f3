"""``flask --app wsgi keys status [--json]``: the page's report for shells and scripts."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.audit.settings import AuditSettings
from tests.keys.conftest import (
    API_SECRET,
    API_TOKEN,
    NEW_SECRET,
    add_job,
    audit_key,
    card_api,
    fingerprint,
    ingress,
    oidc,
    secret_strings,
)


@pytest.fixture
def settings(settings):
    return settings.replace(ingress=ingress(NEW_SECRET), lifecycle=card_api(),
                            audit=AuditSettings(export_signing_key=audit_key()), auth=oidc())


def _views(db_session):
    return db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == "keys.status.view")).all()


def test_text_output_names_each_item_its_status_and_what_to_do(cli, db_session):
    result, _ = cli("keys", "status")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("credentials and keys (sandbox): attention")
    assert "[ok] FINCI webhook secrets" in result.output
    assert fingerprint(NEW_SECRET) in result.output
    assert "[ATTENTION] FINCI Card API credentials" in result.output
    assert "do: Check that a scheduler is running" in result.output
    (view,) = _views(db_session)
    assert view.actor_type == "cli"


def test_json_output_is_the_report_and_a_problem_exits_1(cli, db_session):
    add_job(db_session, "cards.refresh", "failure", "CardApiError: FINCI answered 401")
    result, document = cli("keys", "status", "--json")
    assert result.exit_code == 1
    assert document["status"] == "problem" and document["counts"]["problem"] == 1
    items = {item["key"]: item for item in document["items"]}
    assert items["card_api"]["status"] == "problem"
    assert items["card_api"]["facts"]["configured"] is True
    assert items["webhook_secrets"]["rows"][0]["fingerprint"] == fingerprint(NEW_SECRET)
    assert items["tls"]["facts"]["served_here"] is False
    dt.datetime.fromisoformat(document["checked_at"])


def test_no_secret_value_reaches_the_output_or_the_log(cli, settings, db_session, caplog):
    add_job(db_session, "cards.send_actions", "failure", f"{API_TOKEN}:{API_SECRET}")
    caplog.set_level(logging.DEBUG)
    text, _ = cli("keys", "status")
    as_json, _ = cli("keys", "status", "--json")
    logs = "\n".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    details = " ".join(view.details for view in _views(db_session))
    assert "[redacted]" in as_json.output
    for secret in secret_strings(settings):
        assert secret not in text.output
        assert secret not in as_json.output
        assert secret not in logs
        assert secret not in details
