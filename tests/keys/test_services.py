"""Every status rule of the credentials and keys report, on both databases."""

from __future__ import annotations

import datetime as dt

import pytest

from console.audit import Actor
from console.audit.export_format import key_fingerprint
from console.audit.settings import AuditSettings
from console.auth import break_glass
from console.auth.models import BreakGlassAccount
from console.auth.settings import AuthSettings
from console.keys.services import Status, TlsFiles, key_status
from console.security.permissions import Role
from console.settings import Serve
from tests.conftest import make_settings
from tests.keys.conftest import (
    API_SECRET,
    API_TOKEN,
    NEW_SECRET,
    OLD_SECRET,
    TEST_VECTOR_SECRET,
    add_job,
    add_message,
    add_rejection,
    audit_key,
    card_api,
    fingerprint,
    ingress,
    make_certificate,
    oidc,
)

NO_TLS = TlsFiles()


def _item(session, now, tls=NO_TLS, **settings):
    def report(key):
        result = key_status(session, make_settings(**settings), at=now, tls=tls)
        return next(item for item in result.items if item.key == key)
    return report


def _messages(item) -> list[str]:
    return [finding.message for finding in item.findings]


# --- webhook secrets --------------------------------------------------------------------------

def test_no_webhook_secret_is_a_problem_because_the_ingress_refuses_everything(db_session, now):
    item = _item(db_session, now, ingress=ingress())("webhook_secrets")
    assert item.status is Status.PROBLEM
    assert "refuses every delivery" in _messages(item)[0]
    assert "FINCI_WEBHOOK_SECRETS" in item.findings[0].action


def test_a_console_only_node_without_secrets_is_fine(db_session, now):
    item = _item(db_session, now, ingress=ingress(), serve=Serve.CONSOLE)("webhook_secrets")
    assert item.status is Status.OK


def test_a_secret_idle_for_seven_days_while_another_verifies_means_rotation_finished(
        db_session, now):
    old, new = fingerprint(OLD_SECRET), fingerprint(NEW_SECRET)
    add_message(db_session, new, now - dt.timedelta(hours=1))
    add_message(db_session, new, now - dt.timedelta(days=6))
    # Older than the window: does not count, and is not even read.
    add_message(db_session, old, now - dt.timedelta(days=8))
    item = _item(db_session, now, ingress=ingress(OLD_SECRET, NEW_SECRET))("webhook_secrets")
    assert item.status is Status.ATTENTION
    (finding,) = item.findings
    assert f"Secret {old} verified nothing in 7 days while {new} did" in finding.message
    assert f"Remove {old}" in finding.action
    rows = {row["fingerprint"]: row for row in item.rows}
    assert rows[new]["verified_7d"] == 2 and rows[old]["verified_7d"] == 0
    assert rows[new]["last_verified_at"] == now - dt.timedelta(hours=1)
    assert rows[old]["status"] == "attention" and rows[new]["status"] == "ok"


def test_two_secrets_both_verifying_is_a_rotation_in_progress_and_fine(db_session, now):
    add_message(db_session, fingerprint(OLD_SECRET), now - dt.timedelta(days=2))
    add_message(db_session, fingerprint(NEW_SECRET), now - dt.timedelta(hours=2))
    item = _item(db_session, now, ingress=ingress(OLD_SECRET, NEW_SECRET))("webhook_secrets")
    assert item.status is Status.OK
    assert "2 secret(s) active; 2 message(s) verified" in _messages(item)[0]


def test_no_traffic_at_all_is_not_called_a_finished_rotation(db_session, now):
    item = _item(db_session, now, ingress=ingress(OLD_SECRET, NEW_SECRET))("webhook_secrets")
    assert item.status is Status.OK
    assert "nothing to compare yet" in _messages(item)[0]


def test_traffic_verified_by_a_removed_secret_is_listed_but_not_flagged(db_session, now):
    add_message(db_session, "deadbeef", now - dt.timedelta(days=1))
    item = _item(db_session, now, ingress=ingress(NEW_SECRET))("webhook_secrets")
    rows = {row["fingerprint"]: row for row in item.rows}
    assert rows["deadbeef"]["state"] == "no longer configured here"
    assert item.status is Status.OK


def test_the_published_test_vector_secret_needs_attention(db_session, now):
    item = _item(db_session, now, ingress=ingress(TEST_VECTOR_SECRET))("webhook_secrets")
    assert item.status is Status.ATTENTION
    assert "test-vector secret" in _messages(item)[0]
    assert fingerprint(TEST_VECTOR_SECRET) in _messages(item)[0]


# --- signature rejections ---------------------------------------------------------------------

def test_recent_signature_and_timestamp_rejections_need_attention(db_session, now):
    add_rejection(db_session, "signature_mismatch", now - dt.timedelta(hours=1))
    add_rejection(db_session, "signature_mismatch", now - dt.timedelta(hours=3))
    add_rejection(db_session, "timestamp_too_old", now - dt.timedelta(hours=2))
    add_rejection(db_session, "source_not_allowed", now - dt.timedelta(hours=1))  # not ours
    add_rejection(db_session, "signature_mismatch", now - dt.timedelta(hours=25))  # too old
    item = _item(db_session, now)("signature_rejections")
    assert item.status is Status.ATTENTION
    assert _messages(item)[0].startswith("3 delivery attempt(s) refused")
    assert {row["reason"]: row["count"] for row in item.rows} == {
        "signature_mismatch": 2, "timestamp_too_old": 1}


def test_no_signature_rejections_is_ok(db_session, now):
    add_rejection(db_session, "body_too_large", now - dt.timedelta(hours=1))
    item = _item(db_session, now)("signature_rejections")
    assert item.status is Status.OK and item.rows == []


# --- Card API ---------------------------------------------------------------------------------

def test_card_api_not_configured_needs_attention(db_session, now):
    item = _item(db_session, now)("card_api")
    assert item.status is Status.ATTENTION
    assert "not configured" in _messages(item)[0]
    assert dict((n, v) for n, _l, v in item.facts)["configured"] is False


def test_a_failing_card_job_is_a_problem_and_its_summary_never_carries_a_credential(
        db_session, now):
    add_job(db_session, "cards.refresh", "failure",
            f"CardApiError: 401 for token {API_TOKEN} signed with {API_SECRET}")
    add_job(db_session, "cards.send_actions", "success")
    item = _item(db_session, now, lifecycle=card_api())("card_api")
    assert item.status is Status.PROBLEM
    assert "cards.refresh failed on its last run" in _messages(item)[0]
    (refresh,) = [row for row in item.rows if row["job"] == "cards.refresh"]
    assert API_TOKEN not in refresh["last_summary"] and API_SECRET not in refresh["last_summary"]
    assert "[redacted]" in refresh["last_summary"]


def test_card_jobs_that_never_ran_leave_the_credentials_untested(db_session, now):
    item = _item(db_session, now, lifecycle=card_api())("card_api")
    assert item.status is Status.ATTENTION
    assert all("has not run yet" in m for m in _messages(item))


def test_configured_card_api_with_succeeding_jobs_is_ok(db_session, now):
    add_job(db_session, "cards.refresh", "success")
    add_job(db_session, "cards.send_actions", "success")
    item = _item(db_session, now, lifecycle=card_api())("card_api")
    assert item.status is Status.OK


# --- audit export signing key -----------------------------------------------------------------

def test_no_audit_signing_key_needs_attention(db_session, now):
    item = _item(db_session, now)("audit_signing_key")
    assert item.status is Status.ATTENTION
    assert "exports are refused" in _messages(item)[0]


def test_a_configured_audit_key_shows_its_key_id(db_session, now):
    key = audit_key()
    item = _item(db_session, now, audit=AuditSettings(export_signing_key=key))(
        "audit_signing_key")
    assert item.status is Status.OK
    assert dict((n, v) for n, _l, v in item.facts)["key_id"] == key_fingerprint(key.public_key())


# --- sign-in ----------------------------------------------------------------------------------

def test_without_oidc_sign_in_needs_attention(db_session, now):
    item = _item(db_session, now)("sign_in")
    assert item.status is Status.ATTENTION
    assert "Single sign-on is not configured" in _messages(item)[0]


def test_oidc_configured_and_break_glass_off_is_ok(db_session, now):
    item = _item(db_session, now, auth=oidc())("sign_in")
    assert item.status is Status.OK
    facts = {n: v for n, _l, v in item.facts}
    assert facts["issuer"] == "https://idp.example/realms/console"
    assert facts["client_id"] == "finci-console" and facts["break_glass_enabled"] is False


def test_break_glass_enabled_without_accounts_needs_attention(db_session, now):
    auth = AuthSettings(issuer="https://idp.example", client_id="c", client_secret="s" * 20,
                        break_glass_enabled=True)
    item = _item(db_session, now, auth=auth)("sign_in")
    assert item.status is Status.ATTENTION
    assert "no account exists" in _messages(item)[0]


def test_a_locked_break_glass_account_needs_attention(app, db_session, now, monkeypatch):
    monkeypatch.setattr(break_glass, "_hasher", break_glass.PasswordHasher(
        time_cost=1, memory_cost=1024, parallelism=1))
    with app.app_context():
        break_glass.create_account(db_session, "keys-bg", "correct horse battery staple",
                                   [Role.ADMIN], actor=Actor.cli("root"),
                                   secret_key="k" * 48, at=now)
    account = db_session.query(BreakGlassAccount).one()
    account.locked_until = now + dt.timedelta(minutes=10)
    db_session.flush()
    auth = AuthSettings(issuer="https://idp.example", client_id="c", client_secret="s" * 20,
                        break_glass_enabled=True)
    item = _item(db_session, now, auth=auth)("sign_in")
    assert item.status is Status.ATTENTION
    assert "Break-glass account keys-bg is locked until" in _messages(item)[0]
    assert "break-glass unlock keys-bg" in item.findings[0].action
    (row,) = item.rows
    assert row["username"] == "keys-bg"
    assert row["locked"] is True and row["last_login_at"] is None


# --- TLS --------------------------------------------------------------------------------------

def test_tls_terminated_elsewhere_says_so(db_session, now):
    item = _item(db_session, now)("tls")
    assert item.status is Status.OK
    assert "terminated in front of the console" in _messages(item)[0]


@pytest.mark.parametrize(("days_left", "expected", "words"), [
    (90, Status.OK, "Valid until"),
    (10, Status.ATTENTION, "expires in 9 day(s)"),
    (-1, Status.PROBLEM, "expired on"),
])
def test_tls_certificate_expiry(db_session, now, tmp_path, days_left, expected, words):
    cert = tmp_path / "cert.pem"
    make_certificate(cert, not_before=now - dt.timedelta(days=30),
                     not_after=now + dt.timedelta(days=days_left, hours=-1))
    tls = TlsFiles(str(cert), str(cert))
    item = _item(db_session, now, tls=tls)("tls")
    assert item.status is expected
    assert words in _messages(item)[0]
    facts = {n: v for n, _l, v in item.facts}
    assert facts["subject"] == "CN=console.example" and facts["issuer"] == "CN=Keys Test CA"


@pytest.mark.parametrize("content", [None, b"not a certificate", b"-----BEGIN CERTIFICATE-----\n"
                                     b"garbage\n-----END CERTIFICATE-----\n"])
def test_an_unreadable_tls_certificate_is_a_problem(db_session, now, tmp_path, content):
    cert = tmp_path / "cert.pem"
    if content is not None:
        cert.write_bytes(content)
    item = _item(db_session, now, tls=TlsFiles(str(cert), str(cert)))("tls")
    assert item.status is Status.PROBLEM


def test_a_missing_tls_key_file_is_a_problem(db_session, now, tmp_path):
    cert = tmp_path / "cert.pem"
    make_certificate(cert, not_before=now - dt.timedelta(days=1),
                     not_after=now + dt.timedelta(days=200))
    item = _item(db_session, now, tls=TlsFiles(str(cert), str(tmp_path / "nope.key")))("tls")
    assert item.status is Status.PROBLEM
    assert "TLS_KEY_FILE" in _messages(item)[-1]


# --- the whole report -------------------------------------------------------------------------

def test_the_report_is_as_bad_as_its_worst_item(db_session, now):
    report = key_status(db_session, make_settings(ingress=ingress()), at=now, tls=TlsFiles())
    assert report.status is Status.PROBLEM
    document = report.as_dict()
    assert document["counts"]["problem"] == 1
    assert [item["key"] for item in document["items"]] == [
        "webhook_secrets", "signature_rejections", "card_api", "audit_signing_key", "sign_in",
        "tls"]
