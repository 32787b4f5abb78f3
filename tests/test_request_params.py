"""console.request_params: hostile query, form and path values are a 400 (or a 404 for an id
that cannot exist), never a 500, never a "database unavailable" 503 with an ERROR log line."""

from __future__ import annotations

import pytest

from console import request_params
from console.finci.contract import AMOUNT_MAX_MINOR_UNITS

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


@pytest.mark.parametrize("query", ["until=9999-12-31", "message_id=%C2%B2"])
def test_the_replay_preview_refuses_far_dates_and_unicode_digits(as_oncall, caplog, query):
    with caplog.at_level("WARNING"):
        response = as_oncall.get(f"/pipeline/replays/preview?{query}")
    assert response.status_code == 400
    assert " must be " in response.get_data(as_text=True)
    assert _errors(caplog) == []


def test_a_nul_in_a_form_reason_is_a_400_without_an_error_log(as_oncall, caplog):
    with caplog.at_level("WARNING"):
        response = as_oncall.post("/pipeline/replays", data={
            "csrf_token": as_oncall.csrf_token, "type": "authorization", "reason": "oops\x00"})
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


# --- every listed page: far dates, unicode digits, huge numbers ------------------------------

HUGE = "9" * 5000


@pytest.mark.parametrize(("url", "named"), [
    ("/pipeline/deliveries?until=9999-12-31", "until"),
    ("/pipeline/deliveries?since=%D9%A2%D9%A0%D9%A2%D9%A6-01-01", "since"),  # "٢٠٢٦-01-01"
    ("/pipeline/deliveries?before=%C2%B2", "before"),  # "²": str.isdigit() says yes
    ("/pipeline/deliveries?before=99999999999999999999", "before"),
    ("/audit/?until=9999-12-31", "until"),
    ("/audit/?since=0001-01-01", "since"),
    ("/audit/?before=%C2%B2", "before"),
    ("/audit/?before=99999999999999999999", "before"),
    ("/decisions/?before=%C2%B2", "before"),
    ("/decisions/?before=99999999999999999999", "before"),
    ("/decisions/divergences?before=%C2%B2", "before"),
])
def test_far_dates_unicode_digits_and_huge_numbers_are_a_400_naming_the_parameter(
        as_admin, caplog, url, named):
    with caplog.at_level("WARNING"):
        response = as_admin.get(url)
    assert response.status_code == 400
    assert f"{named} must be" in response.get_data(as_text=True)
    assert _errors(caplog) == []


@pytest.mark.parametrize(("query", "message"), [
    ({"date": "9999-12-31"}, "date must be a date"),
    ({"date": "2026-02-30"}, "date must be a date"),
    ({"amount": HUGE}, "amount must be a number"),
    ({"amount": "1" + "0" * 17}, "amount is larger than any amount FINCI can send"),
    ({"amount": "1e999999"}, "amount must be a number"),
    ({"amount": "NaN"}, "amount must be a number"),
    ({"amount": "\u0661\u0662"}, "amount must be a number"),
])
def test_transaction_search_names_a_bad_amount_or_date(as_admin, caplog, query, message):
    # The search form shows its problems in place (also in the htmx fragment), as it always has.
    with caplog.at_level("WARNING"):
        response = as_admin.get("/transactions/", query_string=query)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert _errors(caplog) == []


@pytest.mark.parametrize("field", ["since", "until"])
def test_the_replay_form_refuses_a_date_past_the_range(as_oncall, caplog, field):
    with caplog.at_level("WARNING"):
        response = as_oncall.post("/pipeline/replays", data={
            "csrf_token": as_oncall.csrf_token, field: "9999-12-31", "reason": "INC-1 replay"})
    assert response.status_code == 400
    assert f"{field} must be a date" in response.get_data(as_text=True)
    assert _errors(caplog) == []


def test_the_audit_export_refuses_a_date_past_the_range(as_compliance, caplog):
    with caplog.at_level("WARNING"):
        response = as_compliance.post("/audit/export", data={
            "csrf_token": as_compliance.csrf_token, "since": "2026-01-01", "until": "9999-12-31"})
    assert response.status_code == 400
    assert "until must be a date" in response.get_data(as_text=True)
    assert _errors(caplog) == []


def _rules_form(client, **overrides):
    data = {"csrf_token": client.csrf_token, "version": "0", "limits": "card day EUR 50000",
            "timezone": "UTC", "velocity_max": "12", "velocity_window_s": "60",
            "reason": "CHG-1 rules"}
    data.update(overrides)
    return data


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"velocity_max": "\u00b2"}, "velocity_max: must be a whole number"),
    ({"velocity_window_s": HUGE}, "velocity_window_s: must be a whole number"),
    ({"limits": "card day EUR \u00b2"}, "limits line 1"),
    ({"limits": f"card day EUR {HUGE}"}, "limits line 1"),
])
def test_the_rule_form_names_unicode_and_huge_numbers_as_problems(as_admin, caplog, overrides,
                                                                  problem):
    with caplog.at_level("WARNING"):
        response = as_admin.post("/decisions/rules", data=_rules_form(as_admin, **overrides))
    assert response.status_code == 422
    assert problem in response.get_data(as_text=True)
    assert _errors(caplog) == []


@pytest.mark.parametrize("version", ["\u00b2", HUGE, ""])
def test_the_rule_form_refuses_a_version_that_is_not_a_number(as_admin, caplog, version):
    with caplog.at_level("WARNING"):
        response = as_admin.post("/decisions/rules",
                                 data=_rules_form(as_admin, version=version))
    assert response.status_code == 400
    assert _errors(caplog) == []


# --- the parsers themselves ------------------------------------------------------------------

def test_integers_are_ascii_and_bounded():
    assert request_params.integer("n", " 42 ") == 42
    assert request_params.integer("n", "") is None and request_params.integer("n", None) is None
    assert request_params.integer("n", str(BIGINT_MAX)) == BIGINT_MAX
    for bad in [str(BIGINT_MAX + 1), "\u00b2", "\u0663", "-1", "+1", "1_000", "1 0", HUGE]:
        with pytest.raises(request_params.ParameterInvalid, match="n must be a whole number"):
            request_params.integer("n", bad)
    with pytest.raises(request_params.ParameterInvalid):
        request_params.integer("n", "10", maximum=9)


def test_dates_stay_in_a_range_a_day_can_still_be_added_to():
    assert request_params.date("d", "2000-01-01") == request_params.DATE_MIN
    assert request_params.date("d", "2100-12-31") == request_params.DATE_MAX
    assert request_params.instant("d", "2100-12-31", end=True).year == 2101
    assert request_params.instant("d", "2026-11-27T08:05").minute == 5
    assert request_params.instant("d", "2026-11-27T08:05:09").second == 9
    assert request_params.instant("d", "") is None and request_params.day_start("d", " ") is None
    for bad in ["1999-12-31", "2101-01-01", "9999-12-31", "2026-13-01", "26-11-27", "today",
                "\u0662\u0660\u0662\u0666-01-01", "2026-11-27T8:00"]:
        with pytest.raises(request_params.ParameterInvalid, match="d must be a date"):
            request_params.instant("d", bad)
    with pytest.raises(request_params.ParameterInvalid, match="no such time of day"):
        request_params.instant("d", "2026-11-27T25:00")


def test_amounts_are_minor_units_up_to_what_ingress_accepts():
    assert request_params.amount("a", "12") == 1200
    assert request_params.amount("a", "12,5") == 1250
    assert request_params.amount("a", ".05") == 5
    assert request_params.amount("a", "") is None
    top = AMOUNT_MAX_MINOR_UNITS
    assert request_params.amount("a", f"{top // 100}.{top % 100:02d}") == top
    with pytest.raises(request_params.ParameterInvalid, match="larger than"):
        request_params.amount("a", f"{top // 100 + 1}")
    for bad in ["-1", "1.234", "1e3", "NaN", "Infinity", ".", ",", "1.", "\u0661", HUGE]:
        with pytest.raises(request_params.ParameterInvalid, match="a must be a number"):
            request_params.amount("a", bad)
