"""AuthSettings from the environment: every problem named at start, secrets never echoed."""

from __future__ import annotations

import pytest

from console.auth.settings import AuthSettings
from console.security.permissions import Role
from console.settings import ConfigError, Settings

OIDC = {"OIDC_ISSUER": "https://login.example.com/realm/", "OIDC_CLIENT_ID": "console",
        "OIDC_CLIENT_SECRET": "s3cret-value-" + "z" * 20}


def test_defaults_are_sso_off_break_glass_off_and_the_documented_limits():
    auth = AuthSettings.from_env({}, relaxed=False)
    assert not auth.oidc_configured and not auth.break_glass_enabled
    assert (auth.session_idle_minutes, auth.session_absolute_hours,
            auth.step_up_max_age_seconds) == (15, 12, 300)
    assert auth.roles_for_groups(["console-oncall", "unrelated"]) == {Role.ONCALL}
    assert auth.role_claim == "groups"


def test_a_full_oidc_configuration_is_read_and_the_secret_kept_out_of_repr():
    auth = AuthSettings.from_env(OIDC, relaxed=False)
    assert auth.issuer == "https://login.example.com/realm"
    assert OIDC["OIDC_CLIENT_SECRET"] not in repr(auth)


def test_the_client_secret_can_come_from_a_file(tmp_path):
    path = tmp_path / "secret"
    path.write_text("from-a-file\n")
    env = {**OIDC, "OIDC_CLIENT_SECRET_FILE": str(path)}
    del env["OIDC_CLIENT_SECRET"]
    assert AuthSettings.from_env(env, relaxed=False).client_secret == "from-a-file"


@pytest.mark.parametrize(("env", "relaxed", "message"), [
    ({"OIDC_ISSUER": "https://x.example"}, False, "OIDC_CLIENT_ID, OIDC_CLIENT_SECRET missing"),
    ({**OIDC, "OIDC_ISSUER": "http://login.example.com"}, True, "must be an https:// URL"),
    ({**OIDC, "OIDC_ISSUER": "http://127.0.0.1:9000"}, False, "must be an https:// URL"),
    ({"OIDC_GROUP_ROLES": "admins"}, False, "is not GROUP=ROLE"),
    ({"OIDC_GROUP_ROLES": "admins=root"}, False, "'root' is not a role"),
    ({"OIDC_SCOPES": "email profile"}, False, "must include openid"),
    ({"SESSION_IDLE_MINUTES": "600"}, False, "SESSION_IDLE_MINUTES=600 is out of range"),
    ({"BREAK_GLASS_ENABLED": "maybe"}, False, "BREAK_GLASS_ENABLED='maybe'"),
])
def test_invalid_settings_are_refused_by_name(env, relaxed, message):
    with pytest.raises(ConfigError, match=message):
        AuthSettings.from_env(env, relaxed=relaxed)


def test_a_loopback_http_issuer_is_allowed_off_live():
    env = {**OIDC, "OIDC_ISSUER": "http://127.0.0.1:9000"}
    assert AuthSettings.from_env(env, relaxed=True).allow_http_issuer


def test_group_mapping_claim_and_scopes_are_configurable():
    auth = AuthSettings.from_env({"OIDC_GROUP_ROLES": "ops=operator, ops=oncall,audit=compliance",
                                  "OIDC_ROLE_CLAIM": "realm_access.roles",
                                  "OIDC_SCOPES": "openid,email"}, relaxed=False)
    assert auth.roles_for_groups(["ops"]) == {Role.OPERATOR, Role.ONCALL}
    assert auth.role_claim == "realm_access.roles"
    assert auth.scopes == ("openid", "email")


def test_console_settings_load_auth_and_default_it_when_constructed_directly():
    settings = Settings.from_env({"CONSOLE_ENVIRONMENT": "sandbox", "CONSOLE_MODE": "test",
                                  **OIDC, "BREAK_GLASS_ENABLED": "true"})
    assert settings.auth.oidc_configured and settings.auth.break_glass_enabled
    assert OIDC["OIDC_CLIENT_SECRET"] not in repr(settings)
    bare = Settings(environment=settings.environment, mode=settings.mode,
                    secret_key=settings.secret_key, database_url="sqlite://")
    assert bare.auth == AuthSettings.disabled()
