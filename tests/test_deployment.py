import pytest

from console.audit import Actor
from console.db import Database, make_engine
from console.deployment import (
    DatabaseNotInitialised,
    EnvironmentMismatch,
    assert_environment,
    record_environment,
)
from console.settings import Environment
from console.startup import StartupRefused, check
from tests.conftest import make_settings


def test_first_upgrade_stamps_the_environment_and_audits_it(db_session):
    assert record_environment(db_session, "sandbox", Actor.cli("ops")) is True
    assert record_environment(db_session, "sandbox", Actor.cli("ops")) is False
    assert_environment(db_session, "sandbox")


def test_a_database_of_the_other_environment_is_refused(db_session):
    record_environment(db_session, "production", Actor.cli("ops"))
    with pytest.raises(EnvironmentMismatch, match="belongs to the production environment"):
        assert_environment(db_session, "sandbox")
    with pytest.raises(EnvironmentMismatch):
        record_environment(db_session, "sandbox", Actor.cli("ops"))


def test_an_unstamped_database_is_not_initialised(db_session):
    with pytest.raises(DatabaseNotInitialised):
        assert_environment(db_session, "sandbox")


def test_startup_refuses_the_other_environments_database(db_factory):
    url = db_factory.fresh()
    database = Database(make_engine(url))
    try:
        with database.transaction() as session:
            record_environment(session, "sandbox", Actor.cli("ops"))
        check(make_settings(url), database, wait_s=0)
        production = make_settings(url, environment=Environment.PRODUCTION)
        with pytest.raises(StartupRefused, match="belongs to the sandbox environment"):
            check(production, database, wait_s=0)
    finally:
        database.dispose()


def test_startup_refuses_an_unmigrated_database(db_factory):
    url = db_factory.empty()
    database = Database(make_engine(url))
    try:
        with pytest.raises(StartupRefused, match="not been initialised"):
            check(make_settings(url), database, wait_s=0)
    finally:
        database.dispose()


def test_startup_gives_up_on_an_unreachable_database():
    url = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    database = Database(make_engine(url))
    with pytest.raises(StartupRefused, match="unreachable"):
        check(make_settings(url), database, wait_s=0)
