from __future__ import annotations

import pytest
from sqlalchemy import func, select

from console.ingress.models import StoredMessage, WebhookDelivery, WebhookRejection
from tests.conftest import make_settings
from tests.ingress.helpers import ingress_settings


@pytest.fixture
def ingress_config(request):
    """Parametrize indirectly (or override in a module) to change the ingress settings."""
    return getattr(request, "param", None) or ingress_settings()


@pytest.fixture
def settings(db_factory, ingress_config):
    return make_settings(db_factory.shared_url, ingress=ingress_config)


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app):
    import time

    fixed = Clock(float(int(time.time())))
    app.extensions["ingress.clock"] = fixed
    return fixed


class Counts:
    def __init__(self, session):
        self.session = session

    def __call__(self) -> dict[str, int]:
        self.session.expire_all()
        return {
            "messages": self.session.scalar(select(func.count()).select_from(StoredMessage)),
            "deliveries": self.session.scalar(select(func.count()).select_from(WebhookDelivery)),
            # Refused deliveries: the sum of the counters (rows are per minute, source, reason).
            "rejections": self.session.scalar(select(func.coalesce(
                func.sum(WebhookRejection.count), 0))),
        }


@pytest.fixture
def counts(db_session):
    return Counts(db_session)
