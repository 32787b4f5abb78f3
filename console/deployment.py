"""Sandbox/production separation at the database: a database remembers the environment it was
initialised for, and every process refuses to run against the other one (FINCI.md, A)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from console.audit import Actor, AuditAction, record
from console.db import Base, utcnow


class EnvironmentMismatch(RuntimeError):
    pass


class DatabaseNotInitialised(RuntimeError):
    pass


class Deployment(Base):
    __tablename__ = "deployment"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("environment IN ('sandbox', 'production')", name="environment_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    environment: Mapped[str] = mapped_column(String(20))
    initialised_at: Mapped[dt.datetime]


def recorded_environment(session: Session) -> str | None:
    return session.scalar(select(Deployment.environment).where(Deployment.id == 1))


def record_environment(session: Session, environment: str, actor: Actor) -> bool:
    """Stamp a new database with its environment; refuse a database of the other one.
    Returns True when this call did the stamping."""
    current = recorded_environment(session)
    if current is None:
        session.add(Deployment(id=1, environment=environment, initialised_at=utcnow()))
        record(session, actor=actor, action=AuditAction.DEPLOYMENT_ENVIRONMENT_RECORD,
               details={"environment": environment})
        session.flush()
        return True
    if current != environment:
        raise EnvironmentMismatch(_mismatch(current, environment))
    return False


def assert_environment(session: Session, environment: str) -> None:
    current = recorded_environment(session)
    if current is None:
        raise DatabaseNotInitialised(
            "the database has not been initialised: run `flask --app wsgi db upgrade`")
    if current != environment:
        raise EnvironmentMismatch(_mismatch(current, environment))


def _mismatch(current: str, configured: str) -> str:
    return (f"this database belongs to the {current} environment but CONSOLE_ENVIRONMENT is "
            f"{configured}; refusing to start (sandbox and production never share data)")
