import pytest

from console.settings import ConfigError, Environment, Mode, Settings

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
        Settings.from_env(env(CONSOLE_ENVIRONMENT="production", DATABASE_URL="sqlite:///x.db"))


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
