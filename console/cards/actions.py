"""Operator card actions through FINCI's update-card-status, by outbox (DESIGN.md convention 3).

``request_action`` runs in the operator's request transaction: it checks the transition model
(end states cannot be left), writes one ``CardAction`` row and its audit row, and nothing else.
FINCI is called only after that COMMIT, by ``send_due`` (a scheduler job): claim in one short
transaction, call with no transaction open, record the result in another.

Kill switch (``Flow.CARD_ACTIONS``): while it is off, requests and retries are still accepted
and queued (the page says so); ``send_due`` sends nothing, and the queue goes out, in order,
on its first run after the flow is turned back on.

Failures: the Card API client already retries transport errors, 429 and 5xx a few times within
one call (signed, with timeouts and backoff). What still fails is retried by the outbox with a
longer backoff, up to ``CARD_ACTION_MAX_ATTEMPTS``; a refusal by FINCI (4xx, ``status: error``)
cannot be fixed by retrying and fails at once. Every failed attempt is audited and shown with
its error code; an operator can retry a failed action. Both FINCI updates set absolute values,
so repeating one after an ambiguous timeout is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from console.audit import Actor, AuditAction, Outcome, Target, record
from console.cards.models import ActionStatus, Card, CardAction, StatusSource
from console.cards.refresh import SessionScope, apply_status_report, lock_card
from console.db import utcnow
from console.finci import card_api, card_status
from console.finci.card_status import OperatorAction, TransitionRefused
from console.flows.services import Flow, is_enabled
from console.keys import usage as key_usage
from console.keys.inventory import Kind
from console.monitoring.event_counts import CARD_UPDATE_FAILURES, count_event
from console.transactions.settings import LifecycleSettings

log = logging.getLogger(__name__)

MAX_REASON = 500
LEASE = dt.timedelta(minutes=2)
BACKOFF_BASE_S = 30.0
BACKOFF_MAX_S = 1800.0


class ActionRefused(ValueError):
    """The action cannot be requested; the message says why, for the operator."""


def card_api_client(settings: LifecycleSettings, **options) -> card_api.CardApiClient:
    """The signing Card API client for this deployment (``options``: clock, sleep... for tests).

    Plain HTTP is allowed only because settings validation admits it for loopback outside live
    mode (the simulator); a live deployment's URL is always https.
    """
    if not settings.card_api_configured:
        raise ActionRefused("the FINCI Card API is not configured (FINCI_API_BASE_URL)")
    assert settings.api_base_url and settings.api_token and settings.api_secret  # noqa: S101
    options.setdefault("on_accepted", key_usage.marker(Kind.FINCI_API_TOKEN,
                                                       Kind.FINCI_API_SECRET))
    return card_api.CardApiClient(settings.api_base_url, settings.api_token, settings.api_secret,
                                  allow_http=settings.api_base_url.startswith("http://"),
                                  **options)


def allowed_actions(status: str) -> list[OperatorAction]:
    """The actions the transition model allows from ``status`` (what the page offers)."""
    allowed = []
    for action in OperatorAction:
        try:
            card_status.plan_action(status, action)
        except TransitionRefused:
            continue
        allowed.append(action)
    return allowed


def open_action(session: Session, card_id: int) -> CardAction | None:
    return session.scalar(select(CardAction).where(CardAction.card_id == card_id,
                                                   CardAction.status.in_(ActionStatus.OPEN)))


def request_action(session: Session, actor: Actor, token_id: str, action: OperatorAction | str,
                   reason: str, settings: LifecycleSettings,
                   now: dt.datetime | None = None) -> CardAction:
    now = now or utcnow()
    try:
        action = OperatorAction(action)
    except ValueError:
        raise ActionRefused(f"{action!r} is not a card action") from None
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused("a reason is required")
    if len(reason) > MAX_REASON:
        raise ActionRefused(f"the reason is longer than {MAX_REASON} characters")
    if not settings.card_api_configured:
        raise ActionRefused("the FINCI Card API is not configured (FINCI_API_BASE_URL)")
    card = lock_card(session, token_id)
    if card is None:
        raise LookupError(token_id)
    if open_action(session, card.id) is not None:
        raise ActionRefused("a status change for this card is already waiting to be sent")
    try:
        target = card_status.plan_action(card.status, action)
    except TransitionRefused as refused:
        raise ActionRefused(str(refused)) from None
    row = CardAction(card_id=card.id, token_id=card.token_id, action=action.value,
                     from_status=card.status, target_status=target.value, reason=reason,
                     requested_by=actor.id[:200], requested_at=now,
                     status=ActionStatus.PENDING, attempts=0, next_attempt_at=now)
    session.add(row)
    session.flush()
    record(session, actor=actor, action=AuditAction.CARDS_STATUS_REQUEST,
           target=Target("card", card.token_id),
           details={"action": action.value, "reason": reason, "card_action": row.id},
           before={"status": card.status}, after={"status": target.value}, at=now)
    return row


def retry_action(session: Session, actor: Actor, action_id: int,
                 now: dt.datetime | None = None) -> CardAction:
    """Send a failed action again (audited); the transition is checked again when sent."""
    now = now or utcnow()
    row = session.scalar(select(CardAction).where(CardAction.id == action_id).with_for_update())
    if row is None:
        raise LookupError(action_id)
    if row.status != ActionStatus.FAILED:
        raise ActionRefused(f"the action is {row.status}; only failed actions can be retried")
    if open_action(session, row.card_id) is not None:
        raise ActionRefused("another status change for this card is waiting to be sent")
    row.status = ActionStatus.PENDING
    row.attempts = 0
    row.next_attempt_at = now
    session.flush()
    record(session, actor=actor, action=AuditAction.CARDS_STATUS_RETRY,
           target=Target("card", row.token_id),
           details={"card_action": row.id, "last_error": row.last_error}, at=now)
    return row


# --- the sender ------------------------------------------------------------------------------

@dataclass
class SendReport:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    paused: bool = False

    @property
    def summary(self) -> str:
        if self.paused:
            return "card actions switched off: nothing sent"
        if not (self.sent or self.retrying or self.failed or self.refused):
            return "nothing due"
        return (f"{len(self.sent)} sent, {len(self.retrying)} to retry, "
                f"{len(self.failed)} failed, {len(self.refused)} refused")


@dataclass(frozen=True)
class _Claim:
    id: int
    token_id: str
    target: str
    attempt: int


def backoff(attempt: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempt - 1)))


def send_due(scope: SessionScope, client: Callable[[], card_api.CardApiClient],
             settings: LifecycleSettings, actor: Actor, *,
             clock: Callable[[], dt.datetime] = utcnow, limit: int = 20) -> SendReport:
    report = SendReport()
    claims = _claim(scope, actor, clock(), limit, report)
    if not claims:
        return report
    with client() as api:
        for claim in claims:
            error: card_api.CardApiError | None = None
            try:
                api.update_card_status(claim.token_id, claim.target)
            except card_api.CardApiError as exc:
                error = exc
            _record(scope, actor, claim, error, settings, clock(), report)
    return report


def _claim(scope: SessionScope, actor: Actor, now: dt.datetime, limit: int,
           report: SendReport) -> list[_Claim]:
    with scope() as session:
        if not is_enabled(session, Flow.CARD_ACTIONS):
            report.paused = True
            return []
        due = or_(and_(CardAction.status == ActionStatus.PENDING,
                       CardAction.next_attempt_at <= now),
                  and_(CardAction.status == ActionStatus.SENDING, CardAction.lease_until < now))
        rows = session.scalars(select(CardAction).where(due).order_by(CardAction.id)
                               .limit(limit).with_for_update(skip_locked=True)).all()
        claims = []
        for row in rows:
            card = session.get(Card, row.card_id)
            # The card may have changed since the request (FINCI reported it lost): the model
            # is checked again, so an end state is never left even by an old request.
            try:
                card_status.check_transition(card.status, row.target_status)
            except TransitionRefused as refused:
                row.status = ActionStatus.REFUSED
                row.last_error = str(refused)[:300]
                row.completed_at = now
                count_event(session, CARD_UPDATE_FAILURES, {"kind": "refused"}, now)
                report.refused.append(row.id)
                record(session, actor=actor, action=AuditAction.CARDS_STATUS_SEND,
                       target=Target("card", row.token_id), outcome=Outcome.FAILURE,
                       details={"card_action": row.id, "error": row.last_error}, at=now)
                continue
            row.status = ActionStatus.SENDING
            row.attempts += 1
            row.last_attempt_at = now
            row.lease_until = now + LEASE
            claims.append(_Claim(row.id, row.token_id, row.target_status, row.attempts))
        return claims


def _describe(error: card_api.CardApiError) -> str:
    # Kind, status and FINCI's error codes only: the exception carries nothing else.
    parts = [error.kind.value]
    if error.status is not None:
        parts.append(f"HTTP {error.status}")
    if error.errors:
        parts.append(", ".join(error.errors))
    return "; ".join(parts)[:300]


def _permanent(error: card_api.CardApiError) -> bool:
    """FINCI said no (or the request is wrong): retrying cannot change the answer."""
    if error.kind is card_api.ErrorKind.REJECTED:
        return error.status is None or error.status < 500
    return error.kind is card_api.ErrorKind.HTTP and error.status is not None and (
        400 <= error.status < 500 and error.status != 429)


def _record(scope: SessionScope, actor: Actor, claim: _Claim,
            error: card_api.CardApiError | None, settings: LifecycleSettings,
            now: dt.datetime, report: SendReport) -> None:
    with scope() as session:
        row = session.scalar(select(CardAction).where(CardAction.id == claim.id)
                             .with_for_update())
        if row is None or row.status != ActionStatus.SENDING or row.attempts != claim.attempt:
            return  # the lease ran out and another sender took it over
        row.lease_until = None
        if error is None:
            row.status = ActionStatus.SENT
            row.completed_at = now
            row.last_error = None
            apply_status_report(session, token_id=row.token_id, status=row.target_status,
                                stage=None, occurred_at=now, source=StatusSource.OPERATOR,
                                action_id=row.id, now=now)
            report.sent.append(row.id)
            record(session, actor=actor, action=AuditAction.CARDS_STATUS_SEND,
                   target=Target("card", row.token_id),
                   details={"card_action": row.id, "attempt": row.attempts,
                            "status": row.target_status}, at=now)
            return
        row.last_error = _describe(error)
        count_event(session, CARD_UPDATE_FAILURES, {"kind": error.kind.value}, now)
        final = _permanent(error) or row.attempts >= settings.card_action_max_attempts
        if final:
            row.status = ActionStatus.FAILED
            row.completed_at = now
            report.failed.append(row.id)
        else:
            row.status = ActionStatus.PENDING
            row.next_attempt_at = now + backoff(row.attempts)
            report.retrying.append(row.id)
        log.warning("card status update %s attempt %s failed: %s", row.id, row.attempts,
                    row.last_error)
        record(session, actor=actor, action=AuditAction.CARDS_STATUS_SEND,
               target=Target("card", row.token_id), outcome=Outcome.FAILURE,
               details={"card_action": row.id, "attempt": row.attempts,
                        "error": row.last_error, "gave_up": final}, at=now)


def actions_for(session: Session, card_id: int, limit: int = 50) -> list[CardAction]:
    return list(session.scalars(select(CardAction).where(CardAction.card_id == card_id)
                                .order_by(CardAction.id.desc()).limit(limit)))


def attention(session: Session, limit: int = 100) -> list[CardAction]:
    """Failed actions, and those still waiting after a failed attempt: what operators watch."""
    return list(session.scalars(
        select(CardAction)
        .where(or_(CardAction.status.in_((ActionStatus.FAILED, ActionStatus.REFUSED)),
                   and_(CardAction.status.in_(ActionStatus.OPEN),
                        CardAction.last_error.is_not(None))))
        .order_by(CardAction.id.desc()).limit(limit)))
