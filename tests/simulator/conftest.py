from __future__ import annotations

import pytest

from console.finci.webhook_signature import WebhookSecret
from console.simulator.report import Report
from console.simulator.sender import RetryPolicy, Sender
from tests.simulator.receiver import Receiver


class Sleeps(list):
    """Records requested sleeps instead of sleeping; returns False ("not stopped")."""

    def __call__(self, seconds):
        self.append(seconds)
        return False


@pytest.fixture
def secret() -> WebhookSecret:
    return WebhookSecret.generate()


@pytest.fixture
def receiver(secret):
    server = Receiver(secret)
    yield server
    server.close()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_sender(receiver, secret, sleeps):
    """A sender aimed at the receiver, with a short deadline and recorded (not real) sleeps."""
    senders = []

    def make(**overrides) -> tuple[Sender, Report]:
        report = overrides.pop("report", None) or Report(
            scenario="test", seed=0, run_id="t", deadline_s=overrides.get("deadline_s", 0.5))
        options = {"deadline_s": 0.5, "retry": RetryPolicy(max_attempts=3, base_s=0.25),
                   "timeout_s": 2.0, "sleep": sleeps}
        options.update(overrides)
        sender = Sender(receiver.url, secret, report, **options)
        senders.append(sender)
        return sender, report

    yield make
    for sender in senders:
        sender.close()
