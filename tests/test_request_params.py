"""console.request_params: hostile query, form and path values are a 400 (or a 404 for an id
that cannot exist), never a 500, never a "database unavailable" 503 with an ERROR log line."""

from __future__ import annotations

import pytest

BIGINT_MAX = 2**63 - 1


def _errors(caplog) -> list:
    return [r for r in caplog.records if r.levelno >= 40]


@pytest.mark.parametrize("url", [
    "/pipeline/deliveries?q=a%00b", "/pipeline/deliveries?type=%00",
    "/audit/?actor=%00", "/decisions/?token=x%00", "/transactions/?q=%00",
    "/cards/?q=%00", "/pipeline/deliveries?%00=1",
])
def test_a_nul_in_a_query_is_a_400_without_an_error_log(as_admin, caplog, url):
    with caplog.at_level("WARNING"):
        response = as_admin.get(url)
    assert response.status_code == 400
    assert "NUL characters are not allowed" in response.get_data(as_text=True)
    assert _errors(caplog) == []


def test_a_nul_in_a_form_reason_is_a_400_without_an_error_log(as_admin, caplog):
    with caplog.at_level("WARNING"):
        response = as_admin.post("/pipeline/replays", data={
            "csrf_token": as_admin.csrf_token, "type": "authorization", "reason": "oops\x00"})
    assert response.status_code == 400
    assert _errors(caplog) == []


def test_a_nul_from_an_anonymous_visitor_is_a_400_not_a_denial_row(client, caplog):
    with caplog.at_level("WARNING"):
        response = client.get("/pipeline/deliveries?q=%00")
    assert response.status_code == 400
    assert _errors(caplog) == []


def test_a_nul_in_the_path_is_a_400(as_admin, caplog):
    with caplog.at_level("WARNING"):
        response = as_admin.get("/flows/%00")
    assert response.status_code == 400
    assert _errors(caplog) == []


def test_an_htmx_or_json_client_gets_the_400_its_way(as_admin):
    response = as_admin.get("/pipeline/deliveries?q=%00", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request"


@pytest.mark.parametrize("url", [
    f"/pipeline/messages/{BIGINT_MAX + 1}", f"/decisions/{BIGINT_MAX + 1}",
    f"/transactions/{BIGINT_MAX + 1}", f"/transactions/{10**40}/events",
    "/pipeline/messages/%D9%A3",  # "٣", an Arabic-Indic digit int() would take as 3
])
def test_an_id_no_bigint_can_hold_is_a_404(as_admin, caplog, url):
    with caplog.at_level("WARNING"):
        response = as_admin.get(url)
    assert response.status_code == 404
    assert _errors(caplog) == []


def test_the_largest_bigint_id_is_simply_not_found(as_admin):
    assert as_admin.get(f"/pipeline/messages/{BIGINT_MAX}").status_code == 404
