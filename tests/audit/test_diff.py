"""Before/after diffs of audit events: a row per changed field, line diffs of structured values,
the rest of the details kept, and the event page behind every row."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction, Target, record
from console.audit.diff import MAX_DIFF_LINES, present
from console.audit.models import AuditEvent

RULES_BEFORE = {"rules": [{"name": f"rule-{i}", "limit": 100 * i} for i in range(30)],
                "version": 6}
RULES_AFTER = {"rules": [{"name": f"rule-{i}", "limit": 100 * i if i != 17 else 9_999}
                         for i in range(30)], "version": 7}


def _details(session, **kw) -> AuditEvent:
    return record(session, actor=Actor.cli("alice"), action=AuditAction.DECISIONING_RULES_UPDATE,
                  target=Target("rule_set", "7"), **kw)


def test_scalar_changes_are_one_row_per_field_with_the_rest_of_the_details_kept(db_session):
    event = record(db_session, actor=Actor.cli("alice"), action=AuditAction.AUTH_USER_DISABLE,
                   before={"disabled": False, "note": "x"}, after={"disabled": True, "note": "x"},
                   details={"reason": "CHG-1 left the company"})
    shown = present(event.details)
    assert [(c.field, c.before, c.after, c.structured) for c in shown.changes] == [
        ("disabled", "false", "true", False)]
    assert json.loads(shown.other) == {"reason": "CHG-1 left the company"}


def test_a_structured_value_shows_only_the_lines_that_moved_with_context(db_session):
    event = _details(db_session, before=RULES_BEFORE, after=RULES_AFTER)
    changes = {c.field: c for c in present(event.details).changes}
    rules = changes["rules"]
    assert rules.structured and not rules.cut
    removed = [line.text.strip() for line in rules.lines if line.kind == "removed"]
    added = [line.text.strip() for line in rules.lines if line.kind == "added"]
    assert removed == ['"limit": 1700,'] and added == ['"limit": 9999,']
    assert len(rules.lines) < 12  # the 28 unchanged rules are not repeated
    assert changes["version"].before == "6" and changes["version"].after == "7"


def test_added_and_removed_fields_show_a_dash_on_the_missing_side(db_session):
    event = _details(db_session, before={"snoozed_until": None}, after={"snoozed_until": "t"})
    (change,) = present(event.details).changes
    assert (change.before, change.after) == ("—", "t")
    created = _details(db_session, before={}, after={"roles": ["admin", "viewer"]})
    (roles,) = present(created.details).changes
    assert roles.before == "—" and [line.kind for line in roles.lines].count("added") == 4


def test_a_huge_diff_is_cut_and_says_so(db_session):
    event = _details(db_session, before={"doc": list(range(1000))},
                     after={"doc": [str(n) for n in range(1000)]})
    (change,) = present(event.details).changes
    assert change.cut and len(change.lines) == MAX_DIFF_LINES


@pytest.mark.parametrize("stored", ["", "{}", "not json", "[1, 2]", '{"changes": "odd"}',
                                    '{"changes": {"x": 5}}'])
def test_details_the_console_did_not_write_are_shown_not_an_error(stored):
    shown = present(stored)
    if stored == '{"changes": {"x": 5}}':
        assert [(c.field, c.before, c.after) for c in shown.changes] == [("x", "—", "5")]
    else:
        assert shown.changes == ()
        assert shown.other == ("" if stored in ("", "{}") else stored)


# --- the pages ----------------------------------------------------------------------------------

def test_the_log_renders_a_diff_for_a_change_and_links_each_event(as_compliance, db_session):
    event = _details(db_session, before=RULES_BEFORE, after=RULES_AFTER)
    db_session.flush()
    body = as_compliance.get("/audit/").get_data(as_text=True)
    assert 'data-testid="audit-diff"' in body and "2 fields changed: rules, version" in body
    assert re.search(r'class="diff__added">\+ +&#34;limit&#34;: 9999,</span>', body)
    assert f'href="/audit/events/{event.seq}"' in body


def test_the_event_page_shows_who_what_the_diff_and_the_chain_and_is_audited(as_compliance,
                                                                           db_session):
    event = _details(db_session, before={"limit": 1}, after={"limit": 2},
                     details={"reason": "raise the cap"})
    db_session.flush()
    page = as_compliance.get(f"/audit/events/{event.seq}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert f"Audit event #{event.seq}" in body and event.row_hash in body
    assert re.search(r'<td class="diff__removed">1</td><td class="diff__added">2</td>', body)
    assert "raise the cap" in body
    assert 'href="/audit/?target_type=rule_set&amp;target=7"' in body
    viewed = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_LOG_VIEW.value)).all()
    assert json.loads(viewed[-1].details) == {"event": event.seq}


@pytest.mark.parametrize(("seq", "status"), [("999999999", 404), ("0", 400), ("-1", 400),
                                             ("1e3", 400), ("9" * 30, 400), ("\u0661", 400)])
def test_unknown_or_malformed_event_numbers_are_a_clear_4xx(as_compliance, seq, status):
    response = as_compliance.get(f"/audit/events/{seq}")
    assert response.status_code == status


def test_the_event_page_is_for_who_may_read_the_log(as_viewer, db_session):
    event = _details(db_session, before={"a": 1}, after={"a": 2})
    db_session.flush()
    assert as_viewer.get(f"/audit/events/{event.seq}").status_code == 403


def test_changes_far_apart_are_two_hunks_with_a_gap_between(db_session):
    after = {"rules": [dict(r, limit=r["limit"] + (1 if i in (2, 25) else 0))
                       for i, r in enumerate(RULES_BEFORE["rules"])]}
    event = _details(db_session, before={"rules": RULES_BEFORE["rules"]}, after=after)
    (rules,) = present(event.details).changes
    kinds = [line.kind for line in rules.lines]
    assert kinds.count("gap") == 1 and kinds.count("added") == 2
    assert kinds.index("gap") > kinds.index("added")
