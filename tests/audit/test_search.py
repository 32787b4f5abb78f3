"""Free-text search of the audit log (``q``): a case-insensitive substring of actor, action,
target and details, literal for LIKE wildcards and quotes, paged by seq, and refused with a
400 (never a 500) when it cannot be searched for."""

import pytest
from sqlalchemy import select, text

from console.audit import Actor, AuditAction, Target, record
from console.audit.models import AuditEvent
from console.audit.queries import AuditFilter, search, search_text
from tests.support.ids import letters

ROWS = "audit-rows"
HTMX = {"HX-Request": "true", "HX-Target": ROWS}


@pytest.fixture
def log(db_session):
    tag = letters(8)
    record(db_session, actor=Actor.cli(f"alice-{tag}"), action=AuditAction.FLOW_SWITCH_DISABLE,
           target=Target("flow", "decisioning"), details={"reason": f"Incident {tag} at 100%_off"})
    record(db_session, actor=Actor.cli(f"bob-{tag}"), action=AuditAction.CARDS_STATUS_REQUEST,
           target=Target("card", f"tok_{tag}"), details={"reason": "Kündigung O'Brien"})
    db_session.flush()
    return tag


def _actors(session, q, **criteria):
    return [e.actor_id for e in search(session, AuditFilter(text=q, **criteria))]


def test_free_text_matches_reason_actor_action_and_target_case_insensitively(db_session, log):
    assert _actors(db_session, f"INCIDENT {log}") == [f"alice-{log}"]
    assert _actors(db_session, f"BOB-{log}") == [f"bob-{log}"]
    assert _actors(db_session, f"tok_{log}") == [f"bob-{log}"]
    assert f"bob-{log}" in _actors(db_session, "cards.status.req")


def test_like_wildcards_and_quotes_are_matched_literally(db_session, log):
    assert _actors(db_session, "100%_off") == [f"alice-{log}"]
    assert _actors(db_session, "100_%off") == []
    assert _actors(db_session, "%") == [f"alice-{log}"]
    assert _actors(db_session, "O'Brien") == [f"bob-{log}"]
    assert _actors(db_session, "ündigung") == [f"bob-{log}"]


def test_keyset_paging_keeps_the_search(db_session, log):
    for n in range(5):
        record(db_session, actor=Actor.cli(f"pager{n}"), action=AuditAction.AUDIT_LOG_VIEW,
               details={"note": f"paged {log}"})
    db_session.flush()
    first = search(db_session, AuditFilter(text=f"paged {log}"), 3)
    rest = search(db_session, AuditFilter(text=f"paged {log}", before_seq=first[-1].seq), 3)
    assert [e.actor_id for e in first + rest] == [f"pager{n}" for n in range(4, -1, -1)]


def test_the_page_searches_and_its_older_link_carries_q(as_compliance, db_session, log):
    for n in range(55):
        record(db_session, actor=Actor.cli(f"many{n}"), action=AuditAction.AUDIT_LOG_VIEW,
               details={"note": f"bulk {log}"})
    db_session.flush()
    body = as_compliance.get(f"/audit/?q=Incident+{log}", headers=HTMX).get_data(as_text=True)
    assert f"alice-{log}" in body and f"bob-{log}" not in body
    page = as_compliance.get(f"/audit/?q=bulk+{log}").get_data(as_text=True)
    assert f"q=bulk+{log}" in page and "before=" in page
    assert f'value="bulk {log}"' in page


@pytest.mark.parametrize("q", ["a\x00b", "tab\there", "x" * 201])
def test_unsearchable_text_is_a_400_with_a_reason(as_compliance, q):
    response = as_compliance.get("/audit/", query_string={"q": q})
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    # NUL is refused for every parameter before the view (console.request_params).
    assert ("search text" in body) or ("NUL" in body)


@pytest.mark.parametrize("q", ["'; DROP TABLE audit_event; --", "\\", "[]^$.*", "😀" * 50,
                               "%%%___", '"quoted"', "x" * 200])
def test_hostile_but_printable_text_is_searched_safely(as_compliance, db_session, q):
    response = as_compliance.get("/audit/", query_string={"q": q}, headers=HTMX)
    assert response.status_code == 200
    assert db_session.execute(text("SELECT count(*) FROM audit_event")).scalar() > 0


def test_postgresql_serves_free_text_from_the_trigram_index(db_session, log):
    if db_session.bind.dialect.name != "postgresql":
        pytest.skip("the trigram index is PostgreSQL's")
    query = select(AuditEvent.seq).where(search_text().contains("incident", autoescape=True))
    compiled = query.compile(db_session.bind, compile_kwargs={"literal_binds": True})
    db_session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(r[0] for r in db_session.execute(text(f"EXPLAIN {compiled}")))
    assert "ix_audit_event_search" in plan
