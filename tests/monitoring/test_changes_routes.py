import re

from console.audit import Actor, AuditAction, Target, record
from console.flows.services import Flow, set_flow
from console.monitoring.changes import PAGE_SIZE

ONCALL = Actor.cli("oncall-ana")


def _seed(db) -> None:
    set_flow(db, ONCALL, Flow.DECISIONING, enabled=False, reason="INC-7 issuer outage")
    record(db, actor=Actor.cli("admin-bo"), action=AuditAction.AUTH_ROLES_CHANGE,
           target=Target("user", "carl"), before={"roles": ["viewer"]},
           after={"roles": ["oncall"]})
    record(db, actor=ONCALL, action=AuditAction.PIPELINE_REPLAY_START,
           target=Target("replay_job", "12"),
           details={"criteria": {"type": "presentment"}, "reason": "after fix", "total": 40})
    record(db, actor=ONCALL, action=AuditAction.KEYS_STATUS_VIEW)
    db.flush()


def _rows(body: str) -> list[str]:
    return re.findall(r'data-testid="change-summary">([^<]*)<', body)


def test_the_overview_shows_recent_changes_beside_the_panels(as_viewer, db_session):
    _seed(db_session)
    body = as_viewer.get("/").get_data(as_text=True)
    assert 'id="overview-panels"' in body and 'id="recent-changes"' in body
    assert 'hx-get="/changes/recent"' in body
    summaries = _rows(body)
    assert summaries[:3] == ["Started replay #12 of 40 message(s): after fix",
                             "Changed the roles of carl",
                             "Turned decisioning off: INC-7 issuer outage"]


def test_the_recent_fragment_is_a_fragment(as_viewer, db_session):
    _seed(db_session)
    response = as_viewer.get("/changes/recent", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert "Turned decisioning off: INC-7 issuer outage" in body


def test_a_viewer_sees_the_summary_but_no_audit_details_or_links(as_viewer, db_session):
    _seed(db_session)
    body = as_viewer.get("/changes/").get_data(as_text=True)
    assert "Changed the roles of carl" in body
    assert '["oncall"]' not in body and "&#34;oncall&#34;" not in body  # the new roles
    assert 'data-testid="change-audit"' not in body and "/audit/" not in body
    # Objects on panel pages are linked; the users page is not for viewers.
    assert 'href="/flows/" data-testid="change-object"' in body
    assert 'href="/pipeline/replays#replay-12" data-testid="change-object"' in body
    assert 'href="/users/"' not in body


def test_an_auditor_also_sees_details_and_the_audit_row(as_compliance, db_session):
    _seed(db_session)
    body = as_compliance.get("/changes/").get_data(as_text=True)
    assert "&#34;oncall&#34;" in body  # the roles diff, HTML-escaped JSON
    links = re.findall(r'href="(/audit/\?before=\d+)" data-testid="change-audit"', body)
    assert len(links) >= 3
    assert 'href="/users/"' not in body  # compliance does not manage users


def test_an_admin_gets_the_users_link(as_admin, db_session):
    _seed(db_session)
    assert 'href="/users/"' in as_admin.get("/changes/?kind=access").get_data(as_text=True)


def test_the_audit_link_opens_the_log_at_that_event(as_compliance, db_session):
    _seed(db_session)
    body = as_compliance.get("/changes/?kind=flow").get_data(as_text=True)
    (link,) = re.findall(r'href="(/audit/\?before=\d+)" data-testid="change-audit"', body)
    log = as_compliance.get(link).get_data(as_text=True)
    first_action = re.search(r"<code>([a-z_.]+)</code>", log).group(1)
    assert first_action == "flows.switch.disable"


def test_kind_filter_and_htmx_rows(as_viewer, db_session):
    _seed(db_session)
    response = as_viewer.get("/changes/?kind=replay&window=24h",
                             headers={"HX-Request": "true", "HX-Target": "change-rows"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body
    assert _rows(body) == ["Started replay #12 of 40 message(s): after fix"]


def test_paging_walks_back_through_every_change(as_viewer, db_session):
    for n in range(PAGE_SIZE + 5):
        record(db_session, actor=ONCALL, action=AuditAction.PIPELINE_REPLAY_CANCEL,
               target=Target("replay_job", str(n)), details={"done": 0, "total": 1})
    db_session.flush()
    first = as_viewer.get("/changes/?kind=replay").get_data(as_text=True)
    assert len(_rows(first)) == PAGE_SIZE
    older = re.search(r'href="([^"]+)" data-testid="older-changes"', first).group(1)
    assert "kind=replay" in older
    second = as_viewer.get(older.replace("&amp;", "&")).get_data(as_text=True)
    assert _rows(second) == [f"Cancelled replay #{n} at 0/1" for n in range(4, -1, -1)]
    assert 'data-testid="older-changes"' not in second


def test_empty_state_says_what_would_appear(as_viewer):
    body = as_viewer.get("/changes/?kind=credential").get_data(as_text=True)
    assert 'data-testid="no-changes"' in body
    assert "Kill switches turned off or on" in body and "replays" in body


def test_bad_filters_are_400(as_viewer):
    for query in ("window=2y", "kind=logins", "before=-1", "before=abc", "before=0"):
        response = as_viewer.get(f"/changes/?{query}")
        assert response.status_code == 400, query


def test_signed_out_is_sent_to_sign_in(client):
    assert client.get("/changes/").status_code in {302, 401}
    response = client.get("/changes/recent", headers={"HX-Request": "true"})
    assert response.status_code == 401 and "HX-Redirect" in response.headers
