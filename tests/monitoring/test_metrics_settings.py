"""CONSOLE_METRICS_TOKEN (or _FILE): validated at start, kept only as a digest, never echoed."""

import secrets

import pytest

from console.monitoring.settings import MetricsSettings
from console.settings import ConfigError, Settings

BASE = {"CONSOLE_ENVIRONMENT": "sandbox", "SECRET_KEY": "k" * 48,
        "DATABASE_URL": "postgresql://postgres@127.0.0.1/test"}


def test_without_a_token_metrics_are_off():
    metrics = Settings.from_env(BASE).metrics
    assert not metrics.enabled and not metrics.accepts("anything")


def test_a_token_is_accepted_exactly_and_not_kept_in_clear():
    token = secrets.token_urlsafe(32)
    settings = Settings.from_env({**BASE, "CONSOLE_METRICS_TOKEN": token})
    assert settings.metrics.accepts(token)
    assert not settings.metrics.accepts(token[:-1]) and not settings.metrics.accepts(token + "x")
    assert token not in repr(settings) and token not in repr(vars(settings.metrics))


def test_the_token_can_come_from_a_file(tmp_path):
    token = secrets.token_urlsafe(32)
    path = tmp_path / "metrics-token"
    path.write_text(token + "\n")
    assert MetricsSettings.from_env({"CONSOLE_METRICS_TOKEN_FILE": str(path)}).accepts(token)


@pytest.mark.parametrize(("value", "message"), [
    ("short-token", "too short"),
    ("a" * 40, "guessable"),
    ("metrics-metrics-metrics-metrics-metrics!", "only letters"),
    (secrets.token_urlsafe(24) + " " + secrets.token_urlsafe(8), "only letters"),
])
def test_a_weak_or_malformed_token_is_refused_naming_the_variable(value, message):
    with pytest.raises(ConfigError, match=message) as refused:
        Settings.from_env({**BASE, "CONSOLE_METRICS_TOKEN": value})
    assert "CONSOLE_METRICS_TOKEN" in str(refused.value) and value not in str(refused.value)


def test_variable_and_file_together_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="both set"):
        MetricsSettings.from_env({"CONSOLE_METRICS_TOKEN": secrets.token_urlsafe(32),
                                  "CONSOLE_METRICS_TOKEN_FILE": str(tmp_path / "x")})
