from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base


class FlowSwitch(Base):
    """The current state of one flow. A missing row means the flow's default (enabled)."""

    __tablename__ = "flow_switch"

    flow: Mapped[str] = mapped_column(String(40), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[dt.datetime]
    changed_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500))
    # When set, the scheduler turns the flow back on at this time (a forgotten switch must not
    # silently keep declining every card).
    revert_at: Mapped[dt.datetime | None]
