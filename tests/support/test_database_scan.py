"""The end-of-run table scanner (tests/support/database_scan.py) finds what it must."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from console.db import make_engine
from tests.conftest import PanScanner
from tests.support.database_scan import _text_columns, scan_database


@pytest.fixture
def scratch(db_factory):
    """A migrated database of its own holding one refused delivery, masked as stored."""
    engine = make_engine(db_factory.fresh())
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO webhook_rejection (minute, source_ip, reason, count, first_seen_at, "
            "last_seen_at, http_status, detail) VALUES (CURRENT_TIMESTAMP, '', 'test', 1, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 400, 'msg_411111******1111')"))
    yield engine
    # What a test plants must not fail the real run's end-of-run scan.
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM webhook_rejection"))
    engine.dispose()


def _plant(engine, column: str, value: str) -> None:
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE webhook_rejection SET {column} = :v"), {"v": value})


def test_a_clean_database_scans_clean(scratch):
    assert scan_database(scratch) == []


def test_a_card_number_planted_in_a_text_column_is_found_in_any_spelling(scratch):
    _plant(scratch, "webhook_id", "4111 1111 1111 1111")
    _plant(scratch, "detail", r'{"n": "\u0035555555555554444"}')  # JSON text with an escape
    assert sorted(scan_database(scratch)) == [
        ("table:webhook_rejection.detail", "555555******4444"),
        ("table:webhook_rejection.webhook_id", "411111******1111")]


def test_every_text_and_json_column_is_scanned(scratch):
    columns = dict(_text_columns(scratch))
    assert {"body", "webhook_id", "finci_id", "business_key"} <= set(columns["webhook_message"])
    assert "rule_trace" in columns["decision_record"]  # JSON
    assert "details" in columns["audit_event"]


def test_the_end_of_run_scan_reports_a_planted_card_number_as_a_leak(scratch, db_factory):
    # What conftest runs over every PostgreSQL database of the run before dropping them.
    if db_factory.backend != "postgresql":
        pytest.skip("the end-of-run scan covers the PostgreSQL databases")
    _plant(scratch, "webhook_id", "4111111111111111")
    scanner = PanScanner()
    name = scratch.url.database
    db_factory.scan_for_card_numbers(scanner, only=name)
    assert [(where, pan) for where, pan in scanner.hits if where.startswith(f"{name}:")] == [
        (f"{name}:table:webhook_rejection.webhook_id", "411111******1111")]
