from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import func, select

from console.finci.payload import parse_message
from console.ingress import services as ingress
from console.ingress.models import StoredMessage
from console.ingress.verify import Source
from console.pipeline.models import MessageEffect, ProcessingAttempt
from console.pipeline.worker import Worker
from tests.conftest import make_settings
from tests.ingress.helpers import (
    IDENTITY_KEY,
    encode,
    ingress_settings,
    message,
    new_webhook_id,
)

PIPELINE = ingress_settings(max_attempts=3, backoff_base_s=10.0, backoff_max_s=100.0,
                            batch_size=10, lease_s=30.0, poll_interval_s=0.01,
                            replay_rate_per_s=5.0)


@pytest.fixture(autouse=True)
def _no_other_handlers():
    """Each test registers exactly the handlers it needs (other modules register theirs for
    real types; here the pipeline itself is under test)."""
    from console.pipeline import handlers

    handlers.load()  # imported (and registered) now, so nothing registers inside the window
    with handlers.isolated():
        yield


@pytest.fixture(autouse=True)
def only_test_handlers():
    """The worker's mechanics are tested with each test's own handlers: the real ones
    (decisioning, transactions, cards) are set aside, whichever modules imported them."""
    from console.pipeline import handlers

    saved = [handlers.handler_for(t) for t in handlers.registered_types()]
    for registration in saved:
        handlers.remove(registration.message_type)
    yield
    for registration in saved:
        handlers.remove(registration.message_type)
        handlers.add(registration.message_type, registration.handler, name=registration.name)


@pytest.fixture
def pipeline_settings(request):
    return getattr(request, "param", None) or PIPELINE


@pytest.fixture
def settings(db_factory, pipeline_settings):
    return make_settings(db_factory.shared_url, ingress=pipeline_settings)


class Clock:
    def __init__(self):
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def worker(test_database, pipeline_settings, clock):
    return Worker(test_database, pipeline_settings, name="worker-a", clock=clock,
                  rand=lambda: 1.0)


@pytest.fixture
def store(test_database, pipeline_settings, clock):
    """Store a message as the ingress would (without HTTP); returns its id."""
    def _store(type_: str = "presentment", body: dict | None = None, **fields) -> int:
        raw = encode(body if body is not None else message(type_, **fields))
        delivery = ingress.Delivery(
            webhook_id=new_webhook_id(), webhook_timestamp=int(time.time()), body=raw,
            verified_by="test", source=Source("127.0.0.1", "127.0.0.1", False),
            headers={}, received_at=clock())
        return ingress.store(test_database, delivery, parse_message(raw),
                             pipeline_settings, identity_key=IDENTITY_KEY).message_id
    return _store


class Inspect:
    def __init__(self, session):
        self.session = session

    def message(self, message_id: int) -> StoredMessage:
        self.session.expire_all()
        return self.session.get(StoredMessage, message_id)

    def effects(self, message_id: int | None = None) -> int:
        query = select(func.count()).select_from(MessageEffect)
        if message_id is not None:
            query = query.where(MessageEffect.message_id == message_id)
        return self.session.scalar(query)

    def attempts(self, message_id: int) -> list[ProcessingAttempt]:
        self.session.expire_all()
        return list(self.session.scalars(
            select(ProcessingAttempt).where(ProcessingAttempt.message_id == message_id)
            .order_by(ProcessingAttempt.id)))


@pytest.fixture
def inspect(db_session):
    return Inspect(db_session)
