from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base


class JobStatus(Base):
    """Last run of each scheduled job, for the health page and for alerting on stale jobs."""

    __tablename__ = "job_status"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    last_started_at: Mapped[dt.datetime | None]
    last_finished_at: Mapped[dt.datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(String(10))
    last_summary: Mapped[str | None] = mapped_column(String(500))
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # Which scheduler instance ran it last (host:pid), to see leadership changes.
    runner: Mapped[str | None] = mapped_column(String(100))
