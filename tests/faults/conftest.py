"""Fault runs: a PostgreSQL cluster of their own (tests.faults.cluster) that they crash.

``FAULT_SCALE=full`` (``make faults``) runs them at the issue's size (10,000 messages); the
default is a short run that the ordinary suite includes, so the harness itself never rots."""

from __future__ import annotations

import os
import uuid

import pytest

from console.audit import Actor
from console.db import Database, make_engine
from console.deployment import record_environment
from console.migrate import upgrade
from tests.faults.cluster import PgCluster

FULL = os.environ.get("FAULT_SCALE") == "full"


def scale(short: int, full: int) -> int:
    return full if FULL else short


@pytest.fixture(scope="session")
def cluster():
    owned = PgCluster().init()
    owned.start()
    try:
        yield owned
    finally:
        owned.destroy()


@pytest.fixture
def cluster_url(cluster) -> str:
    """A fresh migrated database in the fault cluster, stamped for the sandbox."""
    url = cluster.create_database(f"faults_{uuid.uuid4().hex[:10]}")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    database = Database(make_engine(url))
    with database.transaction() as session:
        record_environment(session, "sandbox", Actor.system("test"))
    database.dispose()
    return url
