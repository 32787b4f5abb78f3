"""/metrics: bearer token, Prometheus text format, flow gauges read from the database."""

import secrets

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from console.audit import Actor
from console.flows.services import Flow, set_flow
from console.monitoring.settings import MetricsSettings
from tests.conftest import TEST_SECRET_KEY, make_settings

TOKEN = secrets.token_urlsafe(32)
PAN = "4111111111111111"


@pytest.fixture
def settings(db_factory):
    return make_settings(db_factory.shared_url, metrics=MetricsSettings.with_token(TOKEN))


def _scrape(client, token=TOKEN):
    return client.get("/metrics", headers={"Authorization": f"Bearer {token}"})


def _samples(text: str) -> dict[tuple[str, str], float]:
    return {(sample.name, sample.labels.get("flow", "")): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": "Bearer"}, {"Authorization": f"Bearer {TOKEN[:-1]}"},
])
def test_a_missing_or_wrong_token_is_401(client, headers):
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert response.is_json and "finci_" not in response.get_data(as_text=True)


def test_a_console_session_is_not_enough(as_admin):
    assert as_admin.get("/metrics").status_code == 401


def test_without_a_configured_token_there_is_no_endpoint(db_factory, test_database):
    from console import create_app

    app = create_app(make_settings(db_factory.shared_url), database=test_database)
    client = app.test_client()
    assert client.get("/metrics", base_url="https://localhost").status_code == 404
    assert client.get("/metrics", base_url="https://localhost",
                      headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_the_gauge_follows_a_switch_change(client, db_session: Session):
    before = _scrape(client)
    assert before.status_code == 200
    assert before.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert before.headers["Cache-Control"] == "no-store"
    samples = _samples(before.get_data(as_text=True))
    assert {samples[("finci_flow_enabled", flow.value)] for flow in Flow} == {1.0}
    assert not any(name == "finci_flow_changed_timestamp_seconds" for name, _ in samples)

    state = set_flow(db_session, Actor.cli("oncall"), Flow.DECISIONING, enabled=False,
                     reason=f"INC-3 card {PAN} reported")
    db_session.flush()
    after = _samples(_scrape(client).get_data(as_text=True))
    assert after[("finci_flow_enabled", "decisioning")] == 0.0
    assert after[("finci_flow_enabled", "processing")] == 1.0
    assert after[("finci_flow_changed_timestamp_seconds", "decisioning")] == pytest.approx(
        state.changed_at.timestamp())


def test_no_secrets_reasons_or_card_numbers_in_the_output(client, db_session):
    set_flow(db_session, Actor.cli("oncall"), Flow.REVEAL, enabled=False,
             reason=f"INC-4 card {PAN} leaked")
    db_session.flush()
    text = _scrape(client).get_data(as_text=True)
    for secret in (TOKEN, TEST_SECRET_KEY, PAN, "INC-4", "oncall"):
        assert secret not in text


@pytest.mark.slow
def test_every_gunicorn_worker_answers_from_the_database(db_factory):
    """Two workers, no multiprocess directory: after a switch change every scrape agrees."""
    from sqlalchemy import create_engine

    from console.settings import _database_url
    from tests.support.servers import Gunicorn, console_env
    from tests.test_gunicorn import _flask

    url = db_factory.empty()
    env = console_env(url, CONSOLE_METRICS_TOKEN=TOKEN)
    assert _flask(env, "db", "upgrade").returncode == 0
    engine = create_engine(_database_url({"DATABASE_URL": url}))
    with Gunicorn(env, workers=2) as server:
        with Session(engine) as session:
            set_flow(session, Actor.cli("oncall"), Flow.PROCESSING, enabled=False,
                     reason="INC-5 backlog")
            session.commit()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        values = set()
        for _ in range(12):  # a new connection each time, so both workers answer some
            text = requests.get(server.url + "/metrics", headers=headers, timeout=5).text
            values.add(_samples(text)[("finci_flow_enabled", "processing")])
        assert values == {0.0}
    engine.dispose()


def test_a_change_time_is_whole_seconds_so_its_digits_never_read_as_a_card_number(
        client, db_session):
    import datetime as dt

    from prometheus_client.utils import floatToGoString

    from console.security.redaction import find_pans

    # A change time whose microseconds, printed as Prometheus prints floats, are 15 digits that
    # pass the Luhn check (one time in ten): seen as a "leaked card number" by the CI scanner.
    base = dt.datetime(2026, 12, 7, 9, 30, 7, tzinfo=dt.UTC)
    at = next(base + dt.timedelta(microseconds=us) for us in range(123_401, 123_500)
              if find_pans(floatToGoString((base + dt.timedelta(microseconds=us)).timestamp())))
    set_flow(db_session, Actor.cli("oncall"), Flow.PROCESSING, enabled=False,
             reason="INC-5 backlog", now=at)
    db_session.flush()
    text = _scrape(client).get_data(as_text=True)
    assert find_pans(text) == []
    assert _samples(text)[("finci_flow_changed_timestamp_seconds", "processing")] == int(
        base.timestamp())


def test_health_check_status_is_1_ok_and_0_failing(client, db_session: Session):
    import datetime as dt

    from console.checks.probes import Finding
    from console.checks.registry import Check
    from console.checks.services import run_checks

    def check(check_id, ok):
        return Check(check_id, check_id, dt.timedelta(minutes=1), lambda _c: Finding(ok, "x"), ())

    settings = make_settings()
    run_checks(db_session, settings, dt.datetime.now(dt.UTC),
               [check("database", True), check("dead_letters", False)])
    db_session.commit()
    samples = {sample.labels["check"]: sample.value
               for family in text_string_to_metric_families(_scrape(client).get_data(as_text=True))
               if family.name == "finci_health_check_status" for sample in family.samples}
    assert samples == {"database": 1.0, "dead_letters": 0.0}
