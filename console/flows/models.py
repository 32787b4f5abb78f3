"""Flow kill switches: on-call can disable a payment flow in seconds, audited, with auto-revert."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from console.db import Base
from console.four_eyes import RequestStatus, request_table_args

__all__ = ["FlowChangeRequest", "FlowSwitch", "RequestStatus"]

ID = BigInteger().with_variant(Integer, "sqlite")


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
    # The second person who approved this change (flows under FLOWS_REQUIRE_APPROVAL).
    approved_by: Mapped[str | None] = mapped_column(String(200))
    # When the scheduler warned that the auto-revert is near: one warning per change.
    revert_warned_at: Mapped[dt.datetime | None]


class FlowChangeRequest(Base):
    """A change to a four-eyes flow, waiting for (or decided by) a second on-call engineer."""

    __tablename__ = "flow_change_request"
    # The shared four-eyes invariants (console.four_eyes): known status, decided iff not
    # pending, expiry after the request, one pending request per flow, the expiry job's index.
    __table_args__ = (
        *request_table_args("flow_change_request", "flow"),
        CheckConstraint("revert_minutes IS NULL OR revert_minutes > 0", name="revert_positive"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    flow: Mapped[str] = mapped_column(String(40))
    # The wanted state: true turns the flow on, false off.
    enabled: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(500))
    # Auto-revert after approval (minutes from the moment it is applied); none = manual.
    revert_minutes: Mapped[int | None] = mapped_column(Integer)
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(10), default=RequestStatus.PENDING)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[dt.datetime | None]
