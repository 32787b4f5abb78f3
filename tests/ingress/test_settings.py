import ipaddress

import pytest

from console.finci.webhook_signature import WebhookSecret
from console.ingress.settings import IngressSettings, SafeDefault
from console.settings import ConfigError, Environment, Mode, Serve, Settings

A = WebhookSecret(b"a" * 32).export()
B = WebhookSecret(b"b" * 32).export()
VECTOR = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def parse(environment=Environment.SANDBOX, mode=Mode.LIVE, serve=Serve.ALL, **env):
    return IngressSettings.from_env(env, environment=environment, mode=mode, serve=serve)


def test_defaults_have_no_secret_and_safe_limits():
    settings = IngressSettings()
    assert settings.secrets == ()
    assert settings.max_body_bytes == 256 * 1024
    assert settings.tolerance_s == 300
    assert settings.safe_default is SafeDefault.ERROR
    assert settings.rejection_retention_days == 90
    assert parse(INGRESS_REJECTION_RETENTION_DAYS="30").rejection_retention_days == 30


def test_settings_has_an_ingress_field_with_a_default():
    settings = Settings(environment=Environment.SANDBOX, mode=Mode.TEST, secret_key="k" * 40,
                        database_url="sqlite://")
    assert isinstance(settings.ingress, IngressSettings)


def test_settings_from_env_reads_the_ingress_variables():
    settings = Settings.from_env({"CONSOLE_ENVIRONMENT": "sandbox", "SECRET_KEY": "k" * 40,
                                  "FINCI_WEBHOOK_SECRETS": f"{A} {B}",
                                  "PIPELINE_MAX_ATTEMPTS": "3"})
    assert len(settings.ingress.secrets) == 2
    assert settings.ingress.max_attempts == 3


def test_two_secrets_for_rotation_and_fingerprints_only_in_repr():
    settings = parse(FINCI_WEBHOOK_SECRETS=f"{A} {B}")
    assert [s.export() for s in settings.secrets] == [A, B]
    assert A not in repr(settings)
    assert len(settings.secret_fingerprints) == 2


def test_secrets_may_come_from_a_file(tmp_path):
    path = tmp_path / "secrets"
    path.write_text(f"{A}\n{B}\n")
    assert len(parse(FINCI_WEBHOOK_SECRETS_FILE=str(path)).secrets) == 2


def test_production_refuses_to_start_without_a_webhook_secret():
    with pytest.raises(ConfigError, match="FINCI_WEBHOOK_SECRETS is required in production"):
        parse(environment=Environment.PRODUCTION)
    # A console-only node does not receive webhooks.
    assert parse(environment=Environment.PRODUCTION, serve=Serve.CONSOLE).secrets == ()


def test_production_refuses_a_published_test_secret():
    with pytest.raises(ConfigError, match="published test secret"):
        parse(environment=Environment.PRODUCTION, FINCI_WEBHOOK_SECRETS=VECTOR)
    assert len(parse(FINCI_WEBHOOK_SECRETS=VECTOR).secrets) == 1  # fine for sandbox tests


@pytest.mark.parametrize(("env", "message"), [
    ({"FINCI_WEBHOOK_SECRETS": "not-a-secret"}, "secret #1"),
    ({"FINCI_WEBHOOK_SECRETS": f"{A} whsec_!!"}, "secret #2"),
    ({"FINCI_WEBHOOK_SECRETS": f"{A} {A}"}, "listed twice"),
    ({"INGRESS_ALLOW_CIDRS": "10.0.0.0/8 nonsense"}, "INGRESS_ALLOW_CIDRS"),
    ({"INGRESS_CLIENT_CERT_SHA256": "abcd"}, "INGRESS_CLIENT_CERT_SHA256"),
    ({"INGRESS_CLIENT_CERT_SHA256": "ab" * 32}, "needs INGRESS_TRUSTED_PROXIES"),
    ({"INGRESS_CLIENT_CERT_HEADER": "Bad Header"}, "INGRESS_CLIENT_CERT_HEADER"),
    ({"INGRESS_MAX_BODY_BYTES": str(10**9)}, "INGRESS_MAX_BODY_BYTES"),
    ({"INGRESS_SAFE_DEFAULT": "maybe"}, "INGRESS_SAFE_DEFAULT"),
    ({"PIPELINE_MAX_ATTEMPTS": "0"}, "PIPELINE_MAX_ATTEMPTS"),
    ({"INGRESS_REJECTION_RETENTION_DAYS": "0"}, "INGRESS_REJECTION_RETENTION_DAYS"),
    ({"INGRESS_REJECTION_RETENTION_DAYS": "a month"}, "INGRESS_REJECTION_RETENTION_DAYS"),
    ({"PIPELINE_HANDLER_MODULES": "tests.x"}, "development and tests only"),
    ({"PIPELINE_HANDLER_MODULES": "not a module!"}, "PIPELINE_HANDLER_MODULES"),
])
def test_bad_values_name_the_variable_and_never_echo_secrets(env, message):
    with pytest.raises(ConfigError, match=message) as refused:
        parse(**env)
    assert A not in str(refused.value)


def test_approving_by_default_is_refused_in_production():
    with pytest.raises(ConfigError, match="INGRESS_SAFE_DEFAULT=success"):
        parse(environment=Environment.PRODUCTION,
              FINCI_WEBHOOK_SECRETS=WebhookSecret.generate().export(),
              INGRESS_SAFE_DEFAULT="success")


def test_network_and_pin_settings_are_parsed():
    settings = parse(INGRESS_ALLOW_CIDRS="10.0.0.0/8, 2001:db8::/32",
                     INGRESS_TRUSTED_PROXIES="127.0.0.1",
                     INGRESS_CLIENT_CERT_SHA256=":".join(["AB"] * 32),
                     PIPELINE_HANDLER_MODULES="", mode=Mode.TEST)
    assert settings.allow_cidrs == (ipaddress.ip_network("10.0.0.0/8"),
                                    ipaddress.ip_network("2001:db8::/32"))
    assert settings.client_cert_pins == frozenset({"ab" * 32})


def test_handler_modules_are_allowed_outside_live_mode():
    assert parse(mode=Mode.TEST, PIPELINE_HANDLER_MODULES="a.b c").handler_modules == ("a.b", "c")


def test_settings_built_in_code_are_validated_like_the_environment():
    with pytest.raises(ConfigError, match="every secret must be a WebhookSecret"):
        IngressSettings(secrets=(A,))  # the whsec_ string, not a parsed secret
    with pytest.raises(ConfigError, match="each pin must be 64 hex digits"):
        IngressSettings(client_cert_pins=frozenset({"AB:" * 31 + "AB"}))
    assert IngressSettings(secrets=(WebhookSecret.parse(A),),
                           client_cert_pins=frozenset({"ab" * 32})).secrets


def test_at_most_four_secrets_are_active_at_once():
    four = " ".join(WebhookSecret(bytes([n]) * 32).export() for n in range(4))
    assert len(parse(FINCI_WEBHOOK_SECRETS=four).secrets) == 4
    with pytest.raises(ConfigError, match="at most 4 active secrets"):
        parse(FINCI_WEBHOOK_SECRETS=f"{four} {A}")
