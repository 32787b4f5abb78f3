"""Alembic environment: runs on a connection handed in by console.migrate, or on DATABASE_URL."""

from alembic import context
from sqlalchemy import create_engine

from console.db import UTCDateTime
from console.model_registry import metadata

config = context.config


def render_item(type_, obj, autogen_context):
    # Our UTCDateTime is a Python-side conversion over a plain timezone-aware DateTime column.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


# PostgreSQL-only expression indexes that migrations create by hand and the models cannot
# declare (SQLite has no equivalent): ix_audit_event_search is the trigram index of
# console.audit.queries.search_text() (0017_audit_search).
MIGRATION_ONLY_INDEXES = frozenset({"ix_audit_event_search"})


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "index" and name in MIGRATION_ONLY_INDEXES)


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from console.settings import Settings

        url = Settings.from_env().database_url
    engine = create_engine(url)
    with engine.begin() as conn:
        run(conn)
    engine.dispose()
