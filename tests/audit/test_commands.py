"""`flask --app wsgi audit export|public-key`: the CLI writes the same signed, audited export as
the console, only once it is complete; refusals exit 2 and leave no file behind."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction, offline, record
from console.audit.export_format import key_fingerprint
from console.audit.models import AuditEvent
from console.audit.settings import AuditSettings
from console.cli import os_user
from tests.audit.conftest import keyed_settings

settings = pytest.fixture(keyed_settings, name="settings")


@pytest.fixture
def events(db_session):
    for day in (1, 2, 3):
        record(db_session, actor=Actor.cli(f"day{day}"), action=AuditAction.AUDIT_LOG_VIEW,
               at=dt.datetime(2030, 3, day, 12, tzinfo=dt.UTC))
    db_session.flush()


def _exports(db_session):
    return db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_LOG_EXPORT.value)).all()


def _no_stray_files(directory):
    assert [p.name for p in directory.iterdir() if "partial" in p.name] == []


def test_export_writes_a_file_that_verifies_offline_and_is_audited_as_the_cli_user(
        cli, events, db_session, tmp_path, public_key_file, capsys):
    out = tmp_path / "march.zip"
    result, document = cli("audit", "export", "--since", "2030-03-02", "--until", "2030-03-04",
                           "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert document["file"] == str(out) and document["count"] == 2
    assert document["window"] == {"since": "2030-03-02T00:00:00.000000Z",
                                  "until": "2030-03-04T00:00:00.000000Z"}
    assert offline.main([str(out), "--public-key", str(public_key_file)]) == 0
    assert "export valid: 2 events" in capsys.readouterr().out
    (audited,) = _exports(db_session)
    assert (audited.actor_type, audited.actor_id) == ("cli", os_user())
    assert json.loads(audited.details)["file_sha256"] == document["file_sha256"]
    _no_stray_files(tmp_path)


def test_export_without_a_window_takes_everything_and_says_how_to_verify(cli, events,
                                                                         tmp_path):
    out = tmp_path / "all.zip"
    result, _ = cli("audit", "export", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("exported 3 events (#1 to #3) to ")
    assert "python -m console.audit.offline" in result.output and out.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "2030-04-01"], "no audit events between 2030-04-01"),
    (["--since", "2030-03-02", "--until", "2030-03-02"], "the window must end after it starts"),
])
def test_a_refused_export_exits_2_and_leaves_the_old_file_alone(cli, events, db_session,
                                                                tmp_path, args, message):
    out = tmp_path / "keep.zip"
    out.write_text("previous export")
    result, _ = cli("audit", "export", *args, "--out", str(out))
    assert result.exit_code == 2 and message in result.output
    assert out.read_text() == "previous export" and _exports(db_session) == []
    _no_stray_files(tmp_path)


def test_a_bad_date_is_a_usage_error(cli, tmp_path):
    result, _ = cli("audit", "export", "--since", "1/3/2030", "--out", str(tmp_path / "x.zip"))
    assert result.exit_code == 2 and "must be a date like 2026-11-27" in result.output


def test_an_unwritable_destination_is_named(cli, events, tmp_path):
    out = tmp_path / "missing-dir" / "x.zip"
    result, _ = cli("audit", "export", "--out", str(out))
    assert result.exit_code == 2 and f"cannot write {out}" in result.output


def test_export_without_a_key_is_refused_clearly(app, cli, events, db_session, tmp_path):
    app.extensions["settings"] = app.extensions["settings"].replace(audit=AuditSettings())
    result, _ = cli("audit", "export", "--out", str(tmp_path / "x.zip"))
    assert result.exit_code == 2
    assert "audit export is not configured: set AUDIT_EXPORT_SIGNING_KEY" in result.output
    assert list(tmp_path.iterdir()) == [] and _exports(db_session) == []


def test_public_key_prints_a_pem_the_verifier_accepts_and_its_fingerprint(
        cli, signing_key, tmp_path):
    result, _ = cli("audit", "public-key")
    fingerprint = key_fingerprint(signing_key.public_key())
    assert result.exit_code == 0
    assert result.output.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert result.output.endswith(f"-----END PUBLIC KEY-----\nkey id: {fingerprint}\n")
    saved = tmp_path / "public.pem"
    saved.write_text(result.output)
    assert key_fingerprint(offline.load_public_key(str(saved))) == fingerprint
    assert "PRIVATE" not in result.output


def test_public_key_json(cli, signing_key):
    _, document = cli("audit", "public-key", "--json")
    assert document["key_id"] == key_fingerprint(signing_key.public_key())
    assert document["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")


def test_public_key_without_a_key_is_refused_clearly(app, cli):
    app.extensions["settings"] = app.extensions["settings"].replace(audit=AuditSettings())
    result, _ = cli("audit", "public-key")
    assert result.exit_code == 2 and "audit export is not configured" in result.output
