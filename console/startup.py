"""Checks a process runs once before serving (gunicorn master, worker, scheduler): the database
belongs to our environment and is at the migration head. Not in create_app: building an app must
not need a database."""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import OperationalError

from console import migrate
from console.db import Database
from console.deployment import assert_environment
from console.settings import Settings

log = logging.getLogger(__name__)


class StartupRefused(RuntimeError):
    pass


def check(settings: Settings, database: Database, *, wait_s: float = 30.0) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with database.transaction() as session:
                current = migrate.current_revision(session.connection())
                if current is None:
                    raise StartupRefused("the database has not been initialised: "
                                         "run `flask --app wsgi db upgrade`")
                assert_environment(session, settings.environment.value)
            break
        except OperationalError:
            # The database may still be starting; give it a bounded while, then give up loudly.
            if time.monotonic() >= deadline:
                raise StartupRefused("the database is unreachable; refusing to start") from None
            log.warning("database not reachable yet; retrying")
            time.sleep(1)
        except StartupRefused:
            raise
        except Exception as exc:
            raise StartupRefused(str(exc)) from exc
    head = migrate.head_revision()
    if current != head:
        raise StartupRefused(
            f"the database is at migration {current}, the code expects {head}: "
            "run `flask --app wsgi db upgrade`")
