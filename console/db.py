"""Database plumbing: typed declarative base, engine and session factory, unit of work.

The caller owns the transaction (DESIGN.md): a web request, a CLI command or a job opens one
session, services only ``flush``, and the caller commits once. Connection and pool checkout
timeouts are short so that a database outage turns into a fast 503, not a hung worker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC datetime is required")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


SQLITE_BEGIN_OPTION = "sqlite_begin"


def make_engine(url: str, *, connect_timeout_s: int = 1, pool_timeout_s: float = 1.0,
                pool_size: int = 5) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            # Each connection is cheap and SQLite serialises writers itself; pooling would only
            # share file handles across forked workers.
            poolclass=NullPool,
            connect_args={"timeout": 5, "check_same_thread": False},
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout_s,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": connect_timeout_s,
            "application_name": "finci-console",
            # psycopg prepares a statement on its fifth run, and from the sixth PostgreSQL may
            # switch it to one generic plan for every parameter value. For a time-window count
            # over millions of rows that plan ignores how narrow the window is: measured with
            # bench/panels.py at 200,000 transactions, a panels request went from 40 ms to 140
            # ms once its statements turned generic (650 ms at a million). Planning each run
            # costs microseconds on these statements; a wrong plan costs a hundred ms.
            "options": "-c plan_cache_mode=force_custom_plan",
        },
    )


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take control of it
    # (the documented SQLAlchemy recipe) so SQLite behaves like PostgreSQL in tests.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    # Units of work (Database sessions) BEGIN IMMEDIATE, taking the write lock up front. With a
    # plain BEGIN, two transactions that both read and then write deadlock on the lock upgrade
    # and SQLite fails one at once with "database is locked" (busy_timeout does not cover that
    # case). Plain connections (probes, migrations) keep a deferred BEGIN so they never queue
    # behind writers.
    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """Engine plus session factory for one process; created by ``create_app`` or a CLI command."""

    def __init__(self, engine: Engine):
        self.engine = engine
        bind = engine
        if engine.dialect.name == "sqlite":
            bind = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        self.sessionmaker = sessionmaker(bind=bind, expire_on_commit=False, autoflush=True)

    @classmethod
    def from_settings(cls, settings) -> Database:
        return cls(
            make_engine(
                settings.database_url,
                connect_timeout_s=settings.db_connect_timeout_s,
                pool_timeout_s=settings.db_pool_timeout_s,
                pool_size=settings.db_pool_size,
            )
        )

    def session(self) -> Session:
        return self.sessionmaker()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work for jobs and commands: commit on success, roll back on error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
