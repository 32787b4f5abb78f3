"""Purging refused-delivery records (``webhook_rejection``, counters per minute) past their
retention.

They record traffic, not money: who sent what we refused and why, for the rejected-traffic
page. A flood of forged deliveries below the rate limit would otherwise grow the table without
bound. Accepted messages and their deliveries are evidence of payments and are never purged
here.

A counter goes once its last refusal is older than the cutoff. The scheduled job
(``ingress.purge_rejections``) deletes in batches of the oldest rows and stops
after a bounded number per run, so one run never holds a long transaction; the next run goes on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from console.ingress.models import WebhookRejection

BATCH = 5_000
MAX_BATCHES_PER_RUN = 20


@dataclass(frozen=True)
class Purged:
    deleted: int
    more_left: bool
    cutoff: dt.datetime

    @property
    def summary(self) -> str:
        if not self.deleted:
            return f"nothing refused before {self.cutoff:%Y-%m-%d %H:%M} UTC"
        more = "; more left for the next run" if self.more_left else ""
        records = "record" if self.deleted == 1 else "records"
        return (f"purged {self.deleted} refused-delivery {records} from before "
                f"{self.cutoff:%Y-%m-%d %H:%M} UTC{more}")


def purge_rejections(session: Session, now: dt.datetime, retention_days: int, *,
                     batch: int = BATCH, max_batches: int = MAX_BATCHES_PER_RUN) -> Purged:
    cutoff = now - dt.timedelta(days=retention_days)
    # ``minute`` (indexed) narrows the scan; ``last_seen_at`` is the exact test.
    expired = (WebhookRejection.minute < cutoff, WebhookRejection.last_seen_at < cutoff)
    deleted = 0
    for _ in range(max_batches):
        oldest = (select(WebhookRejection.id).where(*expired)
                  .order_by(WebhookRejection.minute).limit(batch))
        removed = session.execute(delete(WebhookRejection)
                                  .where(WebhookRejection.id.in_(oldest.scalar_subquery()))
                                  .execution_options(synchronize_session=False)).rowcount
        deleted += removed
        if removed < batch:
            return Purged(deleted, False, cutoff)
    left = session.scalar(select(WebhookRejection.id).where(*expired).limit(1))
    return Purged(deleted, left is not None, cutoff)


def purge_job(session: Session, _actor, now: dt.datetime) -> str:
    """The scheduled job: the retention of the app it runs in (the scheduler's)."""
    from flask import current_app

    days = current_app.extensions["settings"].ingress.rejection_retention_days
    return purge_rejections(session, now, days).summary
