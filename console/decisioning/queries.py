"""Read models for the console pages: decision search, summary figures, divergences."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.decisioning.models import (
    DIVERGENT_OUTCOMES,
    AdviceOutcome,
    DecisionRecord,
    Origin,
    Reason,
)

PAGE_SIZE = 50
# Latency percentiles are computed over at most this many of the newest decisions.
LATENCY_SAMPLE = 5000


@dataclass(frozen=True)
class DecisionFilter:
    answer: str | None = None          # success | error
    reason: str | None = None
    defaults_only: bool = False
    token_id: str | None = None
    authorization_id: str | None = None
    outcome: str | None = None         # an AdviceOutcome, or "divergent", or "pending"
    before_id: int | None = None

    def as_args(self) -> dict[str, str]:
        args = {"answer": self.answer, "reason": self.reason, "token": self.token_id,
                "authorization": self.authorization_id, "outcome": self.outcome,
                "defaults": "1" if self.defaults_only else None}
        return {k: v for k, v in args.items() if v}


def search(session: Session, criteria: DecisionFilter, limit: int = PAGE_SIZE
           ) -> list[DecisionRecord]:
    query = select(DecisionRecord).order_by(DecisionRecord.id.desc()).limit(limit)
    if criteria.answer:
        query = query.where(DecisionRecord.answer == criteria.answer)
    if criteria.reason:
        query = query.where(DecisionRecord.reason == criteria.reason)
    if criteria.defaults_only:
        query = query.where(DecisionRecord.default_used.is_(True))
    if criteria.token_id:
        query = query.where(DecisionRecord.token_id == criteria.token_id)
    if criteria.authorization_id:
        query = query.where(DecisionRecord.authorization_id == criteria.authorization_id)
    if criteria.outcome == "divergent":
        query = query.where(DecisionRecord.advice_outcome.in_([o.value for o in
                                                               DIVERGENT_OUTCOMES]))
    elif criteria.outcome == "pending":
        query = query.where(DecisionRecord.advice_outcome.is_(None))
    elif criteria.outcome:
        query = query.where(DecisionRecord.advice_outcome == criteria.outcome)
    if criteria.before_id:
        query = query.where(DecisionRecord.id < criteria.before_id)
    return list(session.scalars(query))


def percentile(samples: list[float], pct: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True)
class Summary:
    since: dt.datetime
    requests: int = 0
    approved: int = 0
    declined: int = 0
    defaults: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None

    @property
    def divergent(self) -> int:
        return sum(self.by_outcome.get(o.value, 0) for o in DIVERGENT_OUTCOMES)

    @property
    def timeouts(self) -> int:
        return self.by_outcome.get(AdviceOutcome.TIMEOUT.value, 0)

    @property
    def approval_rate(self) -> float | None:
        return self.approved / self.requests if self.requests else None


def summary(session: Session, since: dt.datetime) -> Summary:
    recent = DecisionRecord.received_at >= since
    requests = (DecisionRecord.origin == Origin.REQUEST.value)
    by_answer = dict(session.execute(
        select(DecisionRecord.answer, func.count()).where(recent, requests)
        .group_by(DecisionRecord.answer)).all())
    by_reason = dict(session.execute(
        select(DecisionRecord.reason, func.count()).where(recent)
        .group_by(DecisionRecord.reason).order_by(func.count().desc())).all())
    by_outcome = dict(session.execute(
        select(DecisionRecord.advice_outcome, func.count())
        .where(recent, DecisionRecord.advice_outcome.is_not(None))
        .group_by(DecisionRecord.advice_outcome)).all())
    defaults = session.scalar(select(func.count()).select_from(DecisionRecord)
                              .where(recent, DecisionRecord.default_used.is_(True))) or 0
    latencies = list(session.scalars(
        select(DecisionRecord.total_ms).where(recent, requests,
                                              DecisionRecord.total_ms.is_not(None))
        .order_by(DecisionRecord.id.desc()).limit(LATENCY_SAMPLE)))
    return Summary(
        since=since, requests=sum(by_answer.values()), approved=by_answer.get("success", 0),
        declined=by_answer.get("error", 0), defaults=defaults, by_reason=by_reason,
        by_outcome=by_outcome, p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99), max_ms=max(latencies) if latencies else None)


REASON_LABELS = {
    Reason.APPROVED: "approved",
    Reason.CARD_UNKNOWN: "unknown card",
    Reason.CARD_NOT_ACTIVE: "card not active",
    Reason.NO_ACCOUNT: "no funds account",
    Reason.CURRENCY_MISMATCH: "currency mismatch",
    Reason.INSUFFICIENT_FUNDS: "insufficient funds",
    Reason.LIMIT_EXCEEDED: "spending limit",
    Reason.MCC_BLOCKED: "blocked MCC",
    Reason.COUNTRY_BLOCKED: "blocked country",
    Reason.VELOCITY: "velocity limit",
    Reason.KILL_SWITCH: "kill switch (stand-in)",
    Reason.BUDGET_EXCEEDED: "out of time (safe default)",
    Reason.ERROR: "failure (safe default)",
    Reason.FINCI_MANAGED: "FINCI-managed (acknowledged)",
    Reason.FINCI_DECIDED: "FINCI decided (no request)",
    Reason.ADVICE_ALREADY_RECEIVED: "request after advice",
}

OUTCOME_LABELS = {
    AdviceOutcome.APPROVED_AS_ANSWERED: "approved as we answered",
    AdviceOutcome.DECLINED_AS_ANSWERED: "declined as we answered",
    AdviceOutcome.TIMEOUT: "timeout: we approved too late",
    AdviceOutcome.FINCI_DECLINED: "FINCI declined our approval",
    AdviceOutcome.FINCI_APPROVED: "FINCI approved our decline",
    AdviceOutcome.FINCI_DECIDED: "FINCI decided (we did not)",
}
