from pathlib import Path

import pytest

from console.settings import ConfigError, Environment, Mode, Settings
from tests.support.secret_files import as_secret_files

GOOD_KEY = "k" * 48


def env(**values):
    base = {"CONSOLE_ENVIRONMENT": "sandbox", "SECRET_KEY": GOOD_KEY,
            "DATABASE_URL": "postgresql://postgres@127.0.0.1/test"}
    base.update(values)
    return {k: v for k, v in base.items() if v is not None}


def test_valid_environment_builds_frozen_settings():
    settings = Settings.from_env(env())
    assert settings.environment is Environment.SANDBOX
    assert settings.mode is Mode.LIVE
    assert settings.database_url.startswith("postgresql+psycopg://")
    with pytest.raises(AttributeError):
        settings.environment = Environment.PRODUCTION  # type: ignore[misc]


def test_secret_key_never_appears_in_repr():
    assert GOOD_KEY not in repr(Settings.from_env(env()))


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"CONSOLE_ENVIRONMENT": None}, "CONSOLE_ENVIRONMENT is required"),
        ({"CONSOLE_ENVIRONMENT": "staging"}, "CONSOLE_ENVIRONMENT='staging' is not valid"),
        ({"SECRET_KEY": None}, "SECRET_KEY is required"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is too short"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must be"),
        ({"CONSOLE_MODE": "debug"}, "CONSOLE_MODE='debug' is not valid"),
        ({"CONSOLE_SERVE": "everything"}, "CONSOLE_SERVE"),
        ({"CONSOLE_TRUSTED_PROXY_COUNT": "two"}, "CONSOLE_TRUSTED_PROXY_COUNT='two' is not"),
        ({"CONSOLE_TRUSTED_PROXY_COUNT": "9"}, "CONSOLE_TRUSTED_PROXY_COUNT=9 is out of range"),
        ({"DB_POOL_TIMEOUT": "soon"}, "DB_POOL_TIMEOUT='soon' is not a number"),
        ({"CONSOLE_HSTS": "maybe"}, "CONSOLE_HSTS='maybe' is not a boolean"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_each_bad_variable_gives_a_message_naming_it(overrides, variable):
    with pytest.raises(ConfigError, match=variable.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env(**overrides))


def test_production_refuses_relaxed_modes_and_sqlite():
    with pytest.raises(ConfigError, match="CONSOLE_MODE=development is not allowed"):
        Settings.from_env(env(CONSOLE_ENVIRONMENT="production", CONSOLE_MODE="development"))
    with pytest.raises(ConfigError, match="production requires PostgreSQL"):
        Settings.from_env(production(DATABASE_URL="sqlite:///x.db"))


def test_secret_key_may_come_from_a_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(GOOD_KEY + "\n")
    settings = Settings.from_env(env(SECRET_KEY=None, SECRET_KEY_FILE=str(secret_file)))
    assert settings.secret_key == GOOD_KEY


def test_secret_file_problems_are_named_without_the_value(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY_FILE: cannot read"):
        Settings.from_env(env(SECRET_KEY=None, SECRET_KEY_FILE=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="SECRET_KEY and SECRET_KEY_FILE are both set"):
        Settings.from_env(env(SECRET_KEY_FILE=str(tmp_path / "x")))


def test_development_mode_generates_a_secret_key_but_live_never_does():
    settings = Settings.from_env(env(SECRET_KEY=None, CONSOLE_MODE="development"))
    assert len(settings.secret_key) >= 32
    with pytest.raises(ConfigError):
        Settings.from_env(env(SECRET_KEY=None))


def test_default_database_is_the_embedded_sqlite_file():
    settings = Settings.from_env(env(DATABASE_URL=None))
    assert settings.database_backend == "sqlite"


# A production configuration that starts: every weak-setting test below changes exactly one thing.
STRONG_PRODUCTION = {
    "CONSOLE_ENVIRONMENT": "production",
    "SECRET_KEY": "Zr5v9Qe1-wXk3LmT7bNc_8Hs2YpGdJ0aUfR4oVi6EqSyt",
    "DATABASE_URL": "postgresql://console@db.internal/console",
    "CONSOLE_TRUSTED_PROXY_COUNT": "1",
    "FINCI_WEBHOOK_SECRETS": "whsec_C2FlD3m0bkt8R5nJx9eVq7wPzL1sYhA4uTgWoMiKdXE=",
    "OIDC_ISSUER": "https://idp.example.test", "OIDC_CLIENT_ID": "console",
    "OIDC_CLIENT_SECRET": "q8Vt3LmZ0xR7cN2bK9wP5sJ1hD6fG4yA",
}


def production(**values):
    merged = dict(STRONG_PRODUCTION, **values)
    return as_secret_files({k: v for k, v in merged.items() if v is not None})


@pytest.mark.parametrize("name", ["SECRET_KEY", "FINCI_WEBHOOK_SECRETS", "OIDC_CLIENT_SECRET"])
def test_production_refuses_a_secret_in_a_plain_environment_variable(name):
    env = production()
    path = env.pop(f"{name}_FILE")
    env[name] = Path(path).read_text()
    with pytest.raises(ConfigError, match=rf"^{name}: in production a secret comes from "
                                          rf"{name}_FILE") as refused:
        Settings.from_env(env)
    assert env[name] not in str(refused.value)  # the variable is named, its value never


def test_a_database_url_without_a_password_may_be_plain_in_production_one_with_must_not():
    assert "console@db.internal" in Settings.from_env(production()).database_url
    with pytest.raises(ConfigError, match=r"^DATABASE_URL: in production a secret comes from"):
        Settings.from_env(production(DATABASE_URL="postgresql://console:pw-123@db/console"))


def test_a_strong_production_configuration_starts():
    settings = Settings.from_env(production())
    assert settings.is_production and settings.hsts and settings.auth.oidc_configured


def test_production_refuses_plain_http_without_tls_or_a_trusted_proxy():
    with pytest.raises(ConfigError, match=r"^TLS_CERT_FILE is required in production") as error:
        Settings.from_env(production(CONSOLE_TRUSTED_PROXY_COUNT=None))
    assert "\n" not in str(error.value)
    # gunicorn terminating TLS itself is the other way to serve HTTPS.
    assert Settings.from_env(production(CONSOLE_TRUSTED_PROXY_COUNT=None,
                                        TLS_CERT_FILE="/run/tls/cert.pem")).is_production
    # The sandbox may run on plain HTTP behind nothing (a laptop, a test rig).
    assert Settings.from_env(env(CONSOLE_TRUSTED_PROXY_COUNT=None)).trusted_proxy_count == 0


def test_production_refuses_hsts_off():
    with pytest.raises(ConfigError, match=r"^CONSOLE_HSTS=false is not allowed in production"):
        Settings.from_env(production(CONSOLE_HSTS="false"))
    assert Settings.from_env(env(CONSOLE_HSTS="false")).hsts is False


def test_production_refuses_a_low_entropy_secret_key():
    with pytest.raises(ConfigError, match=r"^SECRET_KEY looks guessable") as error:
        Settings.from_env(production(SECRET_KEY="a" * 32))
    assert "a" * 32 not in str(error.value)
    assert Settings.from_env(env(SECRET_KEY="a" * 32)).secret_key == "a" * 32


def test_production_refuses_an_all_zero_webhook_secret():
    zero = "whsec_" + "A" * 43 + "="  # base64 of 32 zero bytes
    with pytest.raises(ConfigError, match=r"^FINCI_WEBHOOK_SECRETS: secret #1 is not random"):
        Settings.from_env(production(FINCI_WEBHOOK_SECRETS=zero))
    assert len(Settings.from_env(env(FINCI_WEBHOOK_SECRETS=zero)).ingress.secrets) == 1


def test_production_refuses_a_placeholder_oidc_client_secret():
    with pytest.raises(ConfigError, match=r"^OIDC_CLIENT_SECRET looks like a placeholder"):
        Settings.from_env(production(OIDC_CLIENT_SECRET="x"))
    assert Settings.from_env(env(OIDC_ISSUER="https://idp.example.test", OIDC_CLIENT_ID="c",
                                 OIDC_CLIENT_SECRET="x")).auth.client_secret == "x"


def test_production_refuses_to_run_the_console_without_oidc():
    no_oidc = {"OIDC_ISSUER": None, "OIDC_CLIENT_ID": None, "OIDC_CLIENT_SECRET": None}
    with pytest.raises(ConfigError, match=r"^OIDC_ISSUER is required in production"):
        Settings.from_env(production(**no_oidc))
    # An ingress-only node has no operator UI to sign in to.
    assert not Settings.from_env(production(CONSOLE_SERVE="ingress", **no_oidc)
                                 ).auth.oidc_configured


def test_production_refuses_an_approving_decisioning_stand_in():
    with pytest.raises(ConfigError, match=r"^DECISIONING_STAND_IN=success is not allowed in "
                                          r"production"):
        Settings.from_env(production(DECISIONING_STAND_IN="success"))
    assert Settings.from_env(env(DECISIONING_STAND_IN="success")).decisioning.stand_in == "success"


def test_entropy_estimate_separates_placeholders_from_random_keys():
    import secrets

    from console.settings import SECRET_KEY_MIN_ENTROPY_BITS, estimated_entropy_bits

    assert estimated_entropy_bits("") == 0
    assert estimated_entropy_bits("a" * 64) == 0
    assert estimated_entropy_bits(bytes(32)) == 0
    for _ in range(20):
        assert estimated_entropy_bits(secrets.token_urlsafe(48)) > SECRET_KEY_MIN_ENTROPY_BITS
