"""Shared fixtures: real databases (SQLite and PostgreSQL, schema by `alembic upgrade head`),
each test inside a rolled-back transaction, an app wired to it, and the card-number scanner that
fails the run if any full card number reaches a log line, a response or (PostgreSQL, scanned at
the end of the run) a table.

CONSOLE_TEST_DATABASES selects backends (default "sqlite,postgresql"); CONSOLE_TEST_PG_URL points
at a PostgreSQL server where the suite may create and drop its own databases.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from console import create_app, migrate
from console.db import Database, make_engine
from console.finci.contract import is_finci_id
from console.observability.logging import JsonFormatter, RedactingFilter
from console.security.redaction import find_pans, redact_text
from console.settings import Environment, Mode, Settings
from tests.support.secret_scan import secrets_in

BACKENDS = [b.strip() for b in os.environ.get("CONSOLE_TEST_DATABASES",
                                              "sqlite,postgresql").split(",") if b.strip()]
PG_SERVER = os.environ.get("CONSOLE_TEST_PG_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_SECRET_KEY = "test-secret-key-" + "x" * 40

# CI is deterministic: property tests draw the same examples every run there (so a red run is
# reproducible and the coverage gate in .ci/run sees the same lines). Elsewhere each run
# explores new examples; HYPOTHESIS_PROFILE=ci reproduces CI locally.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# --- card-number scanner ---------------------------------------------------------------------

class PanScanner:
    def __init__(self):
        self.hits: list[tuple[str, str]] = []
        self.secret_hits: list[tuple[str, str]] = []  # tests.support.secret_scan

    def scan(self, text_: str, where: str) -> None:
        for pan in find_pans(text_, is_finci_id):
            self.hits.append((where, pan))
        for secret in secrets_in(text_):
            self.secret_hits.append((where, secret))


PAN_SCANNER = PanScanner()


class _ScanningHandler(logging.Handler):
    """Formats every record exactly as production handlers do, then scans the output."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.addFilter(RedactingFilter())
        self.setFormatter(JsonFormatter())

    def emit(self, record):
        PAN_SCANNER.scan(self.format(record), f"log:{record.name}")


@pytest.fixture(scope="session", autouse=True)
def _scan_logs_for_card_numbers():
    handler = _ScanningHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    yield PAN_SCANNER
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture
def pan_scanner():
    return PAN_SCANNER


@pytest.fixture(autouse=True)
def _fresh_flow_switch_cache():
    """Tests share one database per backend and roll back what they committed: a switch state
    cached by one test (console.flows.cache) must not be served to the next."""
    from console.flows.cache import CACHE

    CACHE.clear()
    yield
    CACHE.clear()


def _fail_with(session, title: str, hits: list[tuple[str, str]]) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = title + "\n" + "\n".join(f"  {where}: {found}" for where, found in hits[:20])
    if reporter:
        reporter.write_line(message, red=True)
    session.exitstatus = 1


def pytest_sessionfinish(session, exitstatus):
    if PAN_SCANNER.hits:
        _fail_with(session, "FULL CARD NUMBERS LEAKED (shown masked):", PAN_SCANNER.hits)
    if PAN_SCANNER.secret_hits:
        _fail_with(session, "SECRET VALUES LEAKED (shown by their start):",
                   PAN_SCANNER.secret_hits)


# --- databases -------------------------------------------------------------------------------

def _pg_admin_engine():
    return create_engine(PG_SERVER, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


class DatabaseFactory:
    """Makes migrated databases for one backend: a template once, then cheap copies."""

    def __init__(self, backend: str, workdir: Path):
        self.backend = backend
        self.workdir = workdir
        self.created: list[str] = []
        # The template is never connected to again (PostgreSQL copies only idle templates);
        # tests share a copy of it and roll back, or take a fresh copy of their own.
        self.template_url = self._new_migrated()
        self.shared_url = self.fresh()

    def _new_migrated(self) -> str:
        url = self._empty()
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        return url

    def _empty(self) -> str:
        name = f"console_test_{uuid.uuid4().hex[:12]}"
        self.created.append(name)
        if self.backend == "sqlite":
            return f"sqlite:///{self.workdir / (name + '.sqlite3')}"
        admin = _pg_admin_engine()
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return PG_SERVER.rsplit("/", 1)[0] + "/" + name

    def empty(self) -> str:
        """A database with no schema (for migration tests)."""
        return self._empty()

    def fresh(self) -> str:
        """A new migrated database of its own, for tests that commit or run processes."""
        name = f"console_test_{uuid.uuid4().hex[:12]}"
        self.created.append(name)
        if self.backend == "sqlite":
            source = Path(self.template_url.removeprefix("sqlite:///"))
            target = self.workdir / (name + ".sqlite3")
            shutil.copyfile(source, target)
            return f"sqlite:///{target}"
        template = self.template_url.rsplit("/", 1)[1]
        admin = _pg_admin_engine()
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        admin.dispose()
        return PG_SERVER.rsplit("/", 1)[0] + "/" + name

    def scan_for_card_numbers(self, scanner: PanScanner, only: str | None = None) -> None:
        """QUALITY.md: no full card number in any table dump. Every PostgreSQL database the run
        created (committed data stays in them until the end) is scanned before it is dropped,
        for card numbers and known secrets in one read; ``only`` names one of them."""
        from tests.support.database_scan import as_text, pans_in, scan_database_for

        if self.backend == "sqlite":
            return
        admin = _pg_admin_engine()
        with admin.connect() as connection:
            existing = set(connection.scalars(text("SELECT datname FROM pg_database")))
        admin.dispose()
        for name in (n for n in self.created if n in existing and only in (None, n)):
            engine = make_engine(PG_SERVER.rsplit("/", 1)[0] + "/" + name)
            try:
                hits = scan_database_for(engine, {
                    "pan": pans_in, "secret": lambda v: secrets_in(as_text(v))})
            finally:
                engine.dispose()
            scanner.hits += [(f"{name}:{where}", pan) for where, pan in hits["pan"]]
            scanner.secret_hits += [(f"{name}:{where}", found) for where, found in hits["secret"]]

    def drop_all(self) -> None:
        if self.backend == "sqlite":
            return
        admin = _pg_admin_engine()
        with admin.connect() as connection:
            for name in self.created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_FACTORIES: dict[str, DatabaseFactory] = {}


@pytest.fixture(scope="session")
def database_factories(tmp_path_factory) -> Iterator[dict[str, DatabaseFactory]]:
    yield _FACTORIES
    for engine in _ENGINES.values():
        engine.dispose()
    for factory in _FACTORIES.values():
        factory.scan_for_card_numbers(PAN_SCANNER)
        factory.drop_all()


def _factory(backend: str, factories, tmp_path_factory) -> DatabaseFactory:
    if backend not in factories:
        factories[backend] = DatabaseFactory(backend, tmp_path_factory.mktemp(backend))
    return factories[backend]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_factory(backend, database_factories, tmp_path_factory) -> DatabaseFactory:
    return _factory(backend, database_factories, tmp_path_factory)


_ENGINES: dict[str, object] = {}


@pytest.fixture
def engine(db_factory):
    """The shared migrated database of this backend (tests roll back, so sharing is safe)."""
    if db_factory.backend not in _ENGINES:
        _ENGINES[db_factory.backend] = make_engine(db_factory.shared_url)
    return _ENGINES[db_factory.backend]


@pytest.fixture
def connection(engine):
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


@pytest.fixture
def bound_sessionmaker(connection):
    # Every commit inside the code under test releases a SAVEPOINT; the outer transaction rolls
    # everything back after the test.
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                        expire_on_commit=False)


@pytest.fixture
def db_session(bound_sessionmaker) -> Iterator[Session]:
    session = bound_sessionmaker()
    yield session
    session.close()


@pytest.fixture
def test_database(engine, bound_sessionmaker) -> Database:
    database = Database(engine)
    database.sessionmaker = bound_sessionmaker
    return database


def make_settings(url: str = "sqlite://", **overrides) -> Settings:
    values = dict(environment=Environment.SANDBOX, mode=Mode.TEST, secret_key=TEST_SECRET_KEY,
                  database_url=url)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(db_factory) -> Settings:
    return make_settings(db_factory.shared_url)


# The one full card number a response may carry: the test card number the reveal tests encrypt,
# and only in a successful answer of the reveal endpoint (console.cards.reveal_routes). Any other
# number there, or this one anywhere else, is still a hit.
REVEAL_TEST_PAN = "4000056655665556"
REVEAL_ENDPOINT = "card_reveal.reveal_card"


def _scan_responses(app):
    from flask import request

    @app.after_request
    def _scan(response):
        if not response.direct_passthrough and response.mimetype and (
                response.mimetype.startswith("text/") or response.mimetype.endswith("json")):
            # The route in the report: a hit is then found in one test run, not by bisecting.
            where = f"response:{response.status_code} {request.method} {redact_text(request.path)}"
            text_ = response.get_data(as_text=True)
            if request.endpoint == REVEAL_ENDPOINT and response.status_code == 200:
                text_ = text_.replace(REVEAL_TEST_PAN, "")
            PAN_SCANNER.scan(text_, where)
        return response


class HttpsClient(FlaskClient):
    """The console only serves HTTPS (cookies are Secure, __Host-): test it that way."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("base_url", "https://localhost")
        return super().open(*args, **kwargs)


@pytest.fixture
def app(settings, test_database):
    application = create_app(settings, database=test_database)
    application.config["TESTING"] = True
    application.test_client_class = HttpsClient
    _scan_responses(application)
    return application


@pytest.fixture
def client(app):
    return app.test_client()


# --- personas (console.auth) -----------------------------------------------------------------

@pytest.fixture
def sign_in(app, db_session):
    """``sign_in(client, "operator")``: the client, signed in as that persona (viewer, operator,
    oncall, compliance, admin, multi) through console.auth's login service. The client gets
    ``csrf_token`` (for POSTs: form field ``csrf_token`` or header ``X-CSRF-Token``) and
    ``user_id``. See tests/support/personas.py."""
    from tests.support.personas import sign_in_client

    def _sign_in(client, persona: str, **kwargs):
        return sign_in_client(app, db_session, client, persona, **kwargs)

    return _sign_in


@pytest.fixture
def as_viewer(app, sign_in):
    return sign_in(app.test_client(), "viewer")


@pytest.fixture
def as_operator(app, sign_in):
    return sign_in(app.test_client(), "operator")


@pytest.fixture
def as_oncall(app, sign_in):
    return sign_in(app.test_client(), "oncall")


@pytest.fixture
def as_compliance(app, sign_in):
    return sign_in(app.test_client(), "compliance")


@pytest.fixture
def as_admin(app, sign_in):
    return sign_in(app.test_client(), "admin")


@pytest.fixture
def cli(app):
    """``result, document = cli("trace", "x", "--json")``: run a console command in-process;
    ``document`` is the parsed JSON output when ``--json`` was given."""
    import json

    from console.cli import register_commands

    register_commands(app)
    runner = app.test_cli_runner()

    def invoke(*args):
        result = runner.invoke(args=list(args))
        return result, (json.loads(result.output) if "--json" in args and result.output.strip()
                        else None)
    return invoke
