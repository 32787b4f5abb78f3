"""When a check's result deserves a notification: the alert state machine, without I/O.

ok → failing raises an alert only after ``failures_before_alert`` consecutive failures (one
slow query is not an incident); while failing, it repeats every ``repeat_minutes``; the first
ok after a notified failure sends a recovery. A snooze (always with an expiry) holds back
failing notifications until it lapses; if the check is still failing then, the alert goes out
on the next run. A skipped check (its dependency failed) changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from console.checks.models import CheckState, ResultStatus
from console.checks.settings import ChecksSettings


class Kind(StrEnum):
    FAILING = "failing"
    REPEAT = "repeat"
    RECOVERED = "recovered"


@dataclass(frozen=True)
class Notification:
    check_id: str
    title: str
    kind: Kind
    detail: str
    at: dt.datetime
    consecutive_failures: int


def snoozed(state: CheckState, now: dt.datetime) -> bool:
    return state.snoozed_until is not None and state.snoozed_until > now


def advance(state: CheckState, status: str, *, title: str, detail: str, now: dt.datetime,
            policy: ChecksSettings) -> Notification | None:
    """Move ``state`` past one result; the notification it calls for, if any."""
    state.last_run_at = now
    if state.snoozed_until is not None and not snoozed(state, now):
        state.snoozed_until = state.snooze_reason = state.snoozed_by = None  # lapsed
    if status == ResultStatus.SKIPPED:
        state.status = status
        return None

    def notify(kind: Kind) -> Notification:
        return Notification(state.check_id, title, kind, detail, now, state.consecutive_failures)

    if status == ResultStatus.OK:
        state.status = status
        state.consecutive_failures = 0
        was_notified = state.last_notified_at is not None
        state.alerting = False
        state.last_notified_at = None
        return notify(Kind.RECOVERED) if was_notified else None

    state.status = ResultStatus.FAILING
    state.consecutive_failures = (state.consecutive_failures or 0) + 1
    if state.consecutive_failures >= policy.failures_before_alert:
        state.alerting = True
    if not state.alerting or snoozed(state, now):
        return None
    if state.last_notified_at is None:
        state.last_notified_at = now
        return notify(Kind.FAILING)
    repeat = dt.timedelta(minutes=policy.repeat_minutes)
    if policy.repeat_minutes and now - state.last_notified_at >= repeat:
        state.last_notified_at = now
        return notify(Kind.REPEAT)
    return None
