import datetime as dt

import pytest

from console.checks.probes import Finding
from console.checks.registry import Check
from console.checks.settings import ChecksSettings
from tests.conftest import make_settings

T0 = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


class Switch:
    """A check whose outcome the test sets: ``switch.ok = False``."""

    def __init__(self, ok: bool = True):
        self.ok = ok
        self.calls = 0

    def __call__(self, _ctx) -> Finding:
        self.calls += 1
        return Finding(self.ok, "fine" if self.ok else "broken")


@pytest.fixture
def fake_checks():
    """database + one dependent check, both controllable."""
    db, api = Switch(), Switch()
    checks = [Check("database", "Database", dt.timedelta(minutes=1), db, ()),
              Check("card_api", "Card API", dt.timedelta(minutes=1), api)]
    return db, api, checks


@pytest.fixture
def check_settings(settings):
    return settings.replace(checks=ChecksSettings(failures_before_alert=3, repeat_minutes=30))


__all__ = ["T0", "Switch", "make_settings"]
