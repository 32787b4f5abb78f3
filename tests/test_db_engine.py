"""The PostgreSQL engine's connection settings (console.db.make_engine)."""

import pytest
from sqlalchemy import text

from console.db import make_engine


def test_postgresql_plans_every_statement_for_its_own_parameters(db_factory):
    # A generic plan made a panels request 3.5 times slower on a large database (bench/panels.py).
    if db_factory.backend != "postgresql":
        pytest.skip("plan_cache_mode is PostgreSQL's")
    engine = make_engine(db_factory.fresh())
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW plan_cache_mode")).scalar_one() == \
                "force_custom_plan"
            assert connection.execute(text("SHOW application_name")).scalar_one() == \
                "finci-console"
    finally:
        engine.dispose()
