"""Decisioning settings: defaults, the budget range, no approving safe default in production."""

from __future__ import annotations

import pytest

from console.decisioning.settings import AnswerStatus, DecisioningMode, DecisioningSettings
from console.settings import ConfigError, Settings

BASE = {"CONSOLE_ENVIRONMENT": "sandbox", "CONSOLE_MODE": "test"}


def test_defaults_decline_safely_within_one_and_a_half_seconds():
    settings = Settings.from_env(BASE).decisioning
    assert settings == DecisioningSettings()
    assert (settings.mode, settings.budget_s, settings.safe_default, settings.stand_in,
            settings.acknowledgement) == (DecisioningMode.INTEGRATOR, 1.5, AnswerStatus.ERROR,
                                          AnswerStatus.ERROR, AnswerStatus.SUCCESS)


def test_every_setting_comes_from_the_environment():
    settings = Settings.from_env({**BASE, "DECISIONING_MODE": "FINCI",
                                  "DECISIONING_BUDGET_S": "0.8",
                                  "DECISIONING_SAFE_DEFAULT": "success",
                                  "DECISIONING_STAND_IN": "success",
                                  "DECISIONING_ACKNOWLEDGEMENT": "error",
                                  "DECISIONING_HOLD_TTL_HOURS": "72"}).decisioning
    assert settings == DecisioningSettings(
        mode=DecisioningMode.FINCI, budget_s=0.8, safe_default=AnswerStatus.SUCCESS,
        stand_in=AnswerStatus.SUCCESS, acknowledgement=AnswerStatus.ERROR, hold_ttl_hours=72)


@pytest.mark.parametrize(("name", "value"), [
    ("DECISIONING_BUDGET_S", "0.05"), ("DECISIONING_BUDGET_S", "2.6"),
    ("DECISIONING_BUDGET_S", "soon"), ("DECISIONING_MODE", "both"),
    ("DECISIONING_SAFE_DEFAULT", "maybe"), ("DECISIONING_HOLD_TTL_HOURS", "0"),
])
def test_bad_values_stop_the_start_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**BASE, name: value})


def test_an_approving_safe_default_is_refused_in_production():
    with pytest.raises(ConfigError, match="DECISIONING_SAFE_DEFAULT"):
        DecisioningSettings.from_env({"DECISIONING_SAFE_DEFAULT": "success"}, production=True)
    # Switching decisioning off must not mean approving everything in production.
    with pytest.raises(ConfigError, match="DECISIONING_STAND_IN=success is not allowed"):
        DecisioningSettings.from_env({"DECISIONING_STAND_IN": "success"}, production=True)
    stand_in = DecisioningSettings.from_env({"DECISIONING_STAND_IN": "success"},
                                            production=False)
    assert stand_in.stand_in is AnswerStatus.SUCCESS


def test_the_budget_is_checked_when_built_in_code_too():
    with pytest.raises(ConfigError, match="DECISIONING_BUDGET_S"):
        DecisioningSettings(budget_s=3.0)


def test_a_small_stand_in_approval_cap_is_allowed_in_production_with_its_currency():
    capped = DecisioningSettings.from_env({"DECISIONING_STAND_IN_APPROVE_UP_TO": "2500",
                                           "DECISIONING_STAND_IN_CURRENCY": "EUR"},
                                          production=True)
    assert (capped.stand_in, capped.stand_in_approve_up_to, capped.stand_in_currency) == (
        AnswerStatus.ERROR, 2500, "EUR")
    assert DecisioningSettings().stand_in_approve_up_to is None  # never approve by default


@pytest.mark.parametrize(("env", "message"), [
    ({"DECISIONING_STAND_IN_APPROVE_UP_TO": "0", "DECISIONING_STAND_IN_CURRENCY": "EUR"},
     r"DECISIONING_STAND_IN_APPROVE_UP_TO=0 is out of range \(1..10000\)"),
    ({"DECISIONING_STAND_IN_APPROVE_UP_TO": "10001", "DECISIONING_STAND_IN_CURRENCY": "EUR"},
     "out of range"),
    ({"DECISIONING_STAND_IN_APPROVE_UP_TO": "lots", "DECISIONING_STAND_IN_CURRENCY": "EUR"},
     "not a whole number"),
    ({"DECISIONING_STAND_IN_APPROVE_UP_TO": "100"}, "DECISIONING_STAND_IN_CURRENCY .* required"),
    ({"DECISIONING_STAND_IN_APPROVE_UP_TO": "100", "DECISIONING_STAND_IN_CURRENCY": "euro"},
     "DECISIONING_STAND_IN_CURRENCY .* required"),
    ({"DECISIONING_STAND_IN_CURRENCY": "EUR"}, "only used with"),
    ({"DECISIONING_STAND_IN_APPROVE_UP_TO": "100", "DECISIONING_STAND_IN_CURRENCY": "EUR",
      "DECISIONING_STAND_IN": "success"}, "needs DECISIONING_STAND_IN=error"),
])
def test_a_bad_stand_in_cap_stops_the_start(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, **env})
    with pytest.raises(ConfigError, match=message):
        DecisioningSettings.from_env(env, production=False)


def test_the_cap_is_checked_when_built_in_code_too():
    with pytest.raises(ConfigError, match="out of range"):
        DecisioningSettings(stand_in_approve_up_to=1_000_000, stand_in_currency="EUR")
