def test_healthz_answers_without_sign_in(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_reports_database_at_migration_head(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["database"] == "ok"


def test_readyz_does_not_tell_anonymous_callers_the_migration_revision(client):
    from console import migrate

    response = client.get("/readyz")
    assert response.json == {"status": "ok", "database": "ok"}
    assert migrate.head_revision() not in response.get_data(as_text=True)


def test_readyz_is_unavailable_when_database_is_unreachable(settings):
    from console import create_app
    from console.db import Database, make_engine

    unreachable = Database(make_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/none", connect_timeout_s=1))
    app = create_app(settings, database=unreachable)
    response = app.test_client().get("/readyz", base_url="https://localhost")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "unreachable"}
