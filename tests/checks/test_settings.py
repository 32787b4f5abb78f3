"""CHECKS_* variables: defaults, parsed values, and clear errors naming the variable."""

import pytest

from console.checks.settings import ChecksSettings, SilenceWindow, WebhookFormat
from console.settings import ConfigError

SMTP = {"CHECKS_SMTP_HOST": "mail.example.test", "CHECKS_EMAIL_FROM": "console@example.test",
        "CHECKS_EMAIL_TO": "a@example.test, b@example.test"}


def test_nothing_configured_means_defaults_and_no_notifier():
    checks = ChecksSettings.from_env({}, relaxed=False)
    assert (checks.failures_before_alert, checks.webhook, checks.smtp) == (3, None, None)


def test_the_silence_window_follows_the_hour_of_day():
    checks = ChecksSettings.from_env({"CHECKS_WEBHOOK_SILENCE_MINUTES": "20, 0-6=120, 23=60"},
                                     relaxed=False)
    assert checks.silence == SilenceWindow(20, ((0, 6, 120), (23, 23, 60)))
    assert [checks.silence.minutes_at(h) for h in (0, 6, 7, 22, 23)] == [120, 120, 20, 20, 60]


def test_a_full_notifier_configuration_is_read():
    checks = ChecksSettings.from_env({**SMTP, "CHECKS_WEBHOOK_URL": "https://hooks.example/x",
                                      "CHECKS_WEBHOOK_FORMAT": "slack"}, relaxed=False)
    assert checks.webhook.format is WebhookFormat.SLACK
    assert checks.smtp.recipients == ("a@example.test", "b@example.test")
    assert "hooks.example" not in repr(checks)  # the URL is a credential


@pytest.mark.parametrize(("env", "message"), [
    ({"CHECKS_FAILURES_BEFORE_ALERT": "0"}, "CHECKS_FAILURES_BEFORE_ALERT=0 is out of range"),
    ({"CHECKS_WEBHOOK_SILENCE_MINUTES": "night=5"}, "CHECKS_WEBHOOK_SILENCE_MINUTES"),
    ({"CHECKS_WEBHOOK_SILENCE_MINUTES": "7-30=5"}, "must be 0..23"),
    ({"CHECKS_WEBHOOK_URL": "http://hooks.example/secret-xyz"}, "must be an https:// URL"),
    ({"CHECKS_WEBHOOK_URL": "https://h.example/x", "CHECKS_WEBHOOK_FORMAT": "teams"},
     "CHECKS_WEBHOOK_FORMAT='teams' is not valid"),
    ({"CHECKS_WEBHOOK_URL": "https://h.example/x", "CHECKS_WEBHOOK_FORMAT": "pagerduty"},
     "CHECKS_PAGERDUTY_ROUTING_KEY is required"),
    ({**SMTP, "CHECKS_EMAIL_TO": ""}, "CHECKS_EMAIL_TO is required"),
    ({**SMTP, "CHECKS_EMAIL_TO": "not-an-address"}, "is not an email address"),
    ({**SMTP, "CHECKS_EMAIL_FROM": ""}, "CHECKS_EMAIL_FROM must be"),
    ({**SMTP, "CHECKS_SMTP_USERNAME": "u"}, "go together"),
    ({**SMTP, "CHECKS_SMTP_USERNAME": "u", "CHECKS_SMTP_PASSWORD": "p",
      "CHECKS_SMTP_STARTTLS": "false"}, "needs CHECKS_SMTP_STARTTLS=true"),
    ({**SMTP, "CHECKS_SMTP_PORT": "99999"}, "CHECKS_SMTP_PORT=99999 is out of range"),
])
def test_bad_values_are_refused_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message) as refused:
        ChecksSettings.from_env(env, relaxed=False)
    assert "secret-xyz" not in str(refused.value)


def test_plain_http_webhooks_only_to_loopback_outside_live_mode():
    env = {"CHECKS_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
    assert ChecksSettings.from_env(env, relaxed=True).webhook is not None
    with pytest.raises(ConfigError):
        ChecksSettings.from_env(env, relaxed=False)
