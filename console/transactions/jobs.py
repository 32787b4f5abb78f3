"""Scheduled lifecycle jobs (registered in ``console.scheduler.registry``): each one
``(session, actor, now) -> summary``, like every job there."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from console.audit import Actor
from console.db import Database
from console.transactions import settings as lifecycle_settings
from console.transactions.expiry import (
    expire_authorizations,
    post_switched_off,
    retry_repairable,
)


def expire(session: Session, actor: Actor, now: dt.datetime) -> str:
    return expire_authorizations(session, actor, lifecycle_settings.current(), now).summary


def post_parked(session: Session, actor: Actor, now: dt.datetime) -> str:
    return post_switched_off(session, actor, lifecycle_settings.current(), now).summary


def retry_postings(session: Session, actor: Actor, now: dt.datetime) -> str:
    return retry_repairable(session, actor, lifecycle_settings.current(), now)


def _own_transactions(session: Session):
    """Jobs that call FINCI must not hold the job's transaction open across HTTP calls: they
    open short transactions of their own on the same engine (the job's session stays unused)."""
    return Database(session.get_bind()).transaction


def send_card_actions(session: Session, actor: Actor, now: dt.datetime) -> str:
    from console.cards.actions import card_api_client, send_due

    settings = lifecycle_settings.current()
    if not settings.card_api_configured:
        return "FINCI Card API not configured"
    return send_due(_own_transactions(session), lambda: card_api_client(settings), settings,
                    actor).summary


def refresh_cards(session: Session, actor: Actor, now: dt.datetime) -> str:
    from console.cards.actions import card_api_client
    from console.cards.refresh import refresh_cards as refresh

    settings = lifecycle_settings.current()
    if not settings.card_api_configured:
        return "FINCI Card API not configured"
    with card_api_client(settings) as client:
        report = refresh(_own_transactions(session), client, settings, actor, now)
    if report.failed_owners:
        raise RuntimeError(report.summary)  # recorded as a failed run in the job status
    return report.summary
