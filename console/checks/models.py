"""Health-check results (history) and each check's alert state."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base

ID = BigInteger().with_variant(Integer, "sqlite")


class ResultStatus:
    OK = "ok"
    FAILING = "failing"
    # Not run because a check it needs (the database) failed in the same run: no alert.
    SKIPPED = "skipped"
    ALL = (OK, FAILING, SKIPPED)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class CheckResult(Base):
    """One run of one check."""

    __tablename__ = "health_check_result"
    __table_args__ = (
        CheckConstraint(_in("status", ResultStatus.ALL), name="status_known"),
        CheckConstraint("duration_ms >= 0", name="duration_positive"),
        # History per check, newest first (sparkline, latest status).
        Index("ix_health_check_result_check_started", "check_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    check_id: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[dt.datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))
    # What was measured, in a sentence: figures and thresholds, never secrets or card data.
    detail: Mapped[str] = mapped_column(String(500))


class CheckState(Base):
    """Where one check's alerting stands: what was last notified, and any snooze."""

    __tablename__ = "health_check_state"
    __table_args__ = (
        CheckConstraint(_in("status", ResultStatus.ALL), name="status_known"),
        CheckConstraint("consecutive_failures >= 0", name="failures_positive"),
        # A snooze always has an expiry, a reason and an author (all or nothing).
        CheckConstraint("(snoozed_until IS NULL) = (snooze_reason IS NULL) AND "
                        "(snoozed_until IS NULL) = (snoozed_by IS NULL)", name="snooze_complete"),
    )

    check_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # An alert was sent (or would have been, while snoozed) and no recovery since.
    alerting: Mapped[bool] = mapped_column(Boolean, default=False)
    last_run_at: Mapped[dt.datetime | None]
    # When the last failing notification went out: the basis of repeats.
    last_notified_at: Mapped[dt.datetime | None]
    snoozed_until: Mapped[dt.datetime | None]
    snooze_reason: Mapped[str | None] = mapped_column(String(500))
    snoozed_by: Mapped[str | None] = mapped_column(String(200))
