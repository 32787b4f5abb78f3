from console.audit import Actor
from console.flows.services import Flow, set_flow


def test_overview_shows_every_panel_and_all_clear_on_a_quiet_system(as_viewer):
    page = as_viewer.get("/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    for heading in ("Flows", "Webhooks", "Processing", "Authorizations (24 h)",
                    "Clearing and cards", "Scheduled jobs", "Deployment and audit"):
        assert heading in body
    assert 'hx-get="/overview/panels"' in body


def test_a_disabled_flow_needs_attention(as_viewer, db_session):
    set_flow(db_session, Actor.cli("oncall"), Flow.DECISIONING, enabled=False,
             reason="INC-9 issuer outage")
    fragment = as_viewer.get("/overview/panels", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in body
    assert "decisioning is OFF: INC-9 issuer outage" in body


def test_anonymous_htmx_poll_is_told_to_sign_in(client):
    response = client.get("/overview/panels", headers={"HX-Request": "true"})
    assert response.status_code == 401 and "HX-Redirect" in response.headers
