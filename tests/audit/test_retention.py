"""Retention: old audit rows move to signed bundles that verify, and only then leave the table;
archives plus the remaining log verify as one chain; a missing, changed or invented archive is
named; nothing is removed without a bundle, a key, a directory or a checkpoint."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from console.audit import Actor, AuditAction
from console.audit.checkpoints import describe, sign_newest, verify_log
from console.audit.export import ExportWindow, export_log
from console.audit.models import AuditArchive, AuditEvent
from console.audit.offline import verify_export
from console.audit.retention import (
    RetentionRefused,
    archive_due,
    archive_name,
    months_before,
    verify_archives,
)
from console.audit.settings import AuditSettings
from console.scheduler.registry import JOBS
from tests.audit.conftest import add_rows, keyed_settings, lift_guards, write_export

NOW = dt.datetime(2030, 5, 31, 12, 0, tzinfo=dt.UTC)
OLD = NOW - dt.timedelta(days=400)
ACTOR = Actor.system("scheduler")

settings = pytest.fixture(keyed_settings, name="settings")


@pytest.fixture
def archive_dir(tmp_path):
    directory = tmp_path / "archive"
    directory.mkdir()
    return str(directory)


@pytest.fixture
def audit(signing_key, archive_dir):
    return AuditSettings(export_signing_key=signing_key, archive_dir=archive_dir)


@pytest.fixture
def aged(db_session, signing_key):
    """Five rows from 400 days ago, a checkpoint at row 5, three recent rows."""
    add_rows(db_session, 5, OLD)
    sign_newest(db_session, signing_key, OLD)
    add_rows(db_session, 3, NOW - dt.timedelta(days=3), "recent")
    return db_session


def _seqs(session):
    return list(session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))


def test_old_rows_move_to_a_verified_bundle_and_leave_the_table(aged, audit, archive_dir,
                                                                signing_key):
    run = archive_due(aged, ACTOR, audit, NOW)
    assert run.summary.startswith("archived rows 1 to 5 (5 events older than 2029-05-31)")
    path = os.path.join(archive_dir, archive_name(1, 5))
    report = verify_export(path, signing_key.public_key())
    assert report.ok and (report.manifest["first_seq"], report.manifest["last_seq"]) == (1, 5)
    seqs = _seqs(aged)
    assert seqs[0] == 6 and 5 not in seqs
    archived = aged.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_LOG_ARCHIVE.value)).one()
    assert archived.target_id == archive_name(1, 5) and '"count":5' in archived.details
    result = verify_log(aged, signing_key.public_key(), archive_dir=archive_dir)
    assert result["ok"], result
    assert result["archives"] == {"status": "verified", "count": 1, "checked": 1, "seq": None,
                                  "problem": None}
    assert "archives: 1 verified" in describe(result)
    assert run.as_dict()["archive"]["file"] == archive_name(1, 5)


def test_the_archive_and_an_export_of_the_rest_verify_as_one_chain(aged, audit, archive_dir,
                                                                   signing_key, tmp_path):
    archive_due(aged, ACTOR, audit, NOW)
    rest = write_export(export_log(aged, actor=ACTOR, signing_key=signing_key,
                                   window=ExportWindow(), max_rows=1000), tmp_path / "rest.zip")
    old = verify_export(os.path.join(archive_dir, archive_name(1, 5)), signing_key.public_key())
    new = verify_export(str(rest), signing_key.public_key())
    assert old.ok and new.ok
    assert old.manifest["anchor_prev_hash"] == "0" * 64 or old.manifest["first_seq"] == 1
    assert new.manifest["first_seq"] == old.manifest["last_seq"] + 1
    assert new.manifest["anchor_prev_hash"] == old.manifest["last_hash"]


def test_a_second_run_chains_on_the_first(aged, audit, archive_dir, signing_key):
    archive_due(aged, ACTOR, audit, NOW)
    later = NOW + dt.timedelta(days=400)
    sign_newest(aged, signing_key, later)
    run = archive_due(aged, ACTOR, audit, later)
    first, last = run.archive.first_seq, run.archive.last_seq
    assert first == 6 and last >= 8
    result = verify_log(aged, signing_key.public_key(), archive_dir=archive_dir)
    assert result["ok"] and result["archives"]["checked"] == 2


def test_never_past_the_newest_checkpoint_and_nothing_without_one(db_session, audit,
                                                                  signing_key):
    add_rows(db_session, 4, OLD)
    assert archive_due(db_session, ACTOR, audit, NOW).summary.startswith(
        "waiting for a signed checkpoint at or after row 1")
    assert _seqs(db_session) == [1, 2, 3, 4]
    sign_newest(db_session, signing_key, OLD)
    add_rows(db_session, 2, OLD, "late")  # old, but after the checkpoint
    run = archive_due(db_session, ACTOR, audit, NOW)
    assert (run.archive.first_seq, run.archive.last_seq) == (1, 4)
    assert _seqs(db_session)[:2] == [5, 6]


def test_a_run_is_capped(aged, audit):
    run = archive_due(aged, ACTOR, audit, NOW, max_rows=2)
    assert (run.archive.first_seq, run.archive.last_seq) == (1, 2)


def test_nothing_old_enough_and_retention_off(aged, audit):
    assert archive_due(aged, ACTOR, audit, OLD).summary.startswith("nothing older than")
    for off in (AuditSettings(export_signing_key=audit.export_signing_key),
                AuditSettings(archive_dir=audit.archive_dir)):
        assert archive_due(aged, ACTOR, off, NOW).summary.startswith("retention off")
    assert _seqs(aged)[0] == 1


def test_a_different_file_under_the_name_stops_the_run_with_the_rows_in_place(aged, audit,
                                                                             archive_dir):
    with open(os.path.join(archive_dir, archive_name(1, 5)), "wb") as handle:
        handle.write(b"someone else's file")
    with pytest.raises(RetentionRefused, match="already exists with other content"):
        archive_due(aged, ACTOR, audit, NOW)
    assert _seqs(aged)[0] == 1


def test_an_unwritable_directory_stops_the_run(aged, audit, tmp_path):
    gone = dataclasses.replace(audit, archive_dir=str(tmp_path / "gone"))
    with pytest.raises(RetentionRefused, match="cannot write"):
        archive_due(aged, ACTOR, gone, NOW)


def test_a_chain_that_does_not_start_from_the_last_archive_is_not_archived(aged, audit):
    archive_due(aged, ACTOR, audit, NOW)
    lift_guards(aged)
    aged.execute(text("UPDATE audit_event SET prev_hash = :h WHERE seq = 6"), {"h": "f" * 64})
    sign_later = NOW + dt.timedelta(days=400)
    aged.execute(text("INSERT INTO audit_checkpoint (seq, hash, signed_at, key_id, signature) "
                      "SELECT max(seq), 'x', :at, 'k', 's' FROM audit_event"), {"at": sign_later})
    with pytest.raises(RetentionRefused, match="do not start from the hash the last archive"):
        archive_due(aged, ACTOR, audit, sign_later)


# --- the database's guard --------------------------------------------------------------------

def test_the_database_refuses_to_delete_rows_no_archive_covers(aged, audit):
    with pytest.raises(DBAPIError, match="append-only"), aged.begin_nested():
        aged.execute(text("DELETE FROM audit_event WHERE seq = 2"))
    archive_due(aged, ACTOR, audit, NOW)
    with pytest.raises(DBAPIError, match="append-only"), aged.begin_nested():
        aged.execute(text("DELETE FROM audit_event WHERE seq = 6"))
    with pytest.raises(DBAPIError, match="append-only"), aged.begin_nested():
        aged.execute(text("UPDATE audit_archive SET last_hash = 'x'"))
    with pytest.raises(DBAPIError, match="append-only"), aged.begin_nested():
        aged.execute(text("DELETE FROM audit_archive"))


# --- what verification names -------------------------------------------------------------------

def _break(aged, archive_dir, how):
    path = os.path.join(archive_dir, archive_name(1, 5))
    if how == "missing":
        os.chmod(path, 0o644)
        os.remove(path)
    elif how == "changed":
        os.chmod(path, 0o644)
        with open(path, "ab") as handle:
            handle.write(b"x")
    elif how == "record":
        lift_guards(aged)
        aged.execute(text("ALTER TABLE audit_archive DISABLE TRIGGER USER")
                     if aged.bind.dialect.name == "postgresql"
                     else text("DROP TRIGGER audit_archive_no_update"))
        aged.execute(text("UPDATE audit_archive SET last_hash = :h"), {"h": "e" * 64})
    elif how == "forged":
        from pathlib import Path

        from tests.audit.conftest import members, rewrite

        original = Path(path)
        os.chmod(path, 0o644)
        events = members(original)["events.jsonl"].replace(b'user1', b'userX')
        forged = rewrite(original, original.with_suffix(".forged"), events_jsonl=events)
        os.replace(forged, path)
        _set_archive(aged, "file_sha256", __import__("hashlib").sha256(
            original.read_bytes()).hexdigest())
    elif how == "unreadable":
        os.chmod(path, 0o644)
        with open(path, "wb") as handle:
            handle.write(b"not a zip")
        lift_guards(aged)
        aged.execute(text("ALTER TABLE audit_archive DISABLE TRIGGER USER")
                     if aged.bind.dialect.name == "postgresql"
                     else text("DROP TRIGGER audit_archive_no_update"))
        aged.execute(text("UPDATE audit_archive SET file_sha256 = :h"),
                     {"h": __import__("hashlib").sha256(b"not a zip").hexdigest()})


@pytest.mark.parametrize(("how", "problem"), [
    ("missing", "the bundle is missing from"),
    ("changed", "the bundle's sha256 differs"),
    ("record", "differs from the bundle's signed manifest"),
    ("unreadable", "the bundle cannot be read"),
    ("forged", "the bundle does not verify"),
])
def test_a_broken_archive_is_named(aged, audit, archive_dir, signing_key, how, problem):
    archive_due(aged, ACTOR, audit, NOW)
    _break(aged, archive_dir, how)
    result = verify_log(aged, signing_key.public_key(), archive_dir=archive_dir)
    assert not result["ok"], result
    assert problem in result["problem"] or problem in (result["archives"]["problem"] or "")


def _set_archive(session, column, value):
    lift_guards(session)
    session.execute(text("ALTER TABLE audit_archive DISABLE TRIGGER USER")
                    if session.bind.dialect.name == "postgresql"
                    else text("DROP TRIGGER audit_archive_no_update"))
    session.execute(text(f"UPDATE audit_archive SET {column} = :v"), {"v": value})


def test_archives_that_do_not_follow_each_other_are_named(aged, audit, archive_dir,
                                                          signing_key):
    archive_due(aged, ACTOR, audit, NOW)
    aged.add(AuditArchive(first_seq=7, last_seq=7, count=1, anchor_prev_hash="1" * 64,
                          last_hash="2" * 64, file_name="x.zip", file_sha256="0" * 64,
                          key_id="k", archived_at=NOW, archived_by="mallory"))
    aged.flush()
    result = verify_log(aged, signing_key.public_key(), archive_dir=archive_dir)
    assert not result["ok"]
    assert ("starts at row 7, but the archives before it end at row 5"
            in result["archives"]["problem"])


def test_a_bundle_that_does_not_verify_from_disk_stops_the_run(aged, audit, monkeypatch):
    from console.audit import offline, retention

    def failing(path, key):
        return offline.OfflineReport(False, {}, "row 2 was changed", 2)

    monkeypatch.setattr(retention, "verify_export", failing)
    with pytest.raises(RetentionRefused, match="does not verify from disk"):
        archive_due(aged, ACTOR, audit, NOW)
    assert _seqs(aged)[0] == 1


def test_checkpoint_files_of_archived_rows_are_counted_not_checked(db_session, audit,
                                                                   signing_key, tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    add_rows(db_session, 3, OLD)
    sign_newest(db_session, signing_key, OLD, str(kept))
    add_rows(db_session, 2, NOW - dt.timedelta(days=1), "recent")
    sign_newest(db_session, signing_key, NOW, str(kept))
    archive_due(db_session, ACTOR, audit, NOW)
    result = verify_log(db_session, signing_key.public_key(), checkpoint_dir=str(kept),
                        archive_dir=audit.archive_dir)
    assert result["ok"], result
    assert (result["checkpoint_files"]["count"], result["checkpoint_files"]["checked"]) == (2, 1)


def test_the_scheduled_job_archives_with_the_app_settings(app, aged_now, audit,
                                                          test_database):
    from console.scheduler.runner import run_job

    app.extensions["settings"] = app.extensions["settings"].replace(audit=audit)
    job = next(j for j in JOBS if j.name == "audit.retention")
    assert run_job(test_database, job, app) == "success"
    assert _seqs(aged_now)[0] > 3


def test_an_invented_archive_hiding_a_deletion_is_named(aged, signing_key, archive_dir):
    # The attacker with database access writes an archive row so the trigger lets rows go.
    row5 = aged.get(AuditEvent, 5)
    aged.add(AuditArchive(first_seq=1, last_seq=5, count=5, anchor_prev_hash="0" * 64,
                          last_hash=row5.row_hash, file_name=archive_name(1, 5),
                          file_sha256="0" * 64, key_id="k", archived_at=NOW,
                          archived_by="mallory"))
    aged.flush()
    aged.execute(text("DELETE FROM audit_event WHERE seq <= 5"))
    result = verify_log(aged, signing_key.public_key(), archive_dir=archive_dir)
    assert not result["ok"]
    assert "the bundle is missing" in result["problem"]


def test_archives_without_a_key_or_directory_are_reported_not_checked(aged, audit):
    archive_due(aged, ACTOR, audit, NOW)
    assert verify_archives(aged, None, audit.archive_dir, no_key="no key").status == "no key"
    assert verify_archives(aged, audit.export_signing_key.public_key(), None,
                           no_key="no key").status == "not checked (no AUDIT_ARCHIVE_DIR)"
    result = verify_log(aged, audit.export_signing_key.public_key())
    assert result["ok"] and "archives: not checked (no AUDIT_ARCHIVE_DIR)" in describe(result)
    assert aged.scalar(select(func.count()).select_from(AuditArchive)) == 1


# --- job, CLI, settings --------------------------------------------------------------------------

@pytest.fixture
def aged_now(db_session, signing_key):
    """Rows 400 days older than the real clock (the CLI runs at the real time), checkpointed."""
    then = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    add_rows(db_session, 3, then)
    sign_newest(db_session, signing_key, then)
    db_session.commit()
    return db_session


def test_the_job_is_daily_and_the_cli_archives_with_json(cli, app, aged_now, audit):
    job = next(j for j in JOBS if j.name == "audit.retention")
    assert job.every == dt.timedelta(days=1)
    app.extensions["settings"] = app.extensions["settings"].replace(audit=audit)
    result, document = cli("audit", "archive", "--json")
    assert result.exit_code == 0, result.output
    assert document["archive"]["first_seq"] == 1 and document["archive"]["last_seq"] == 3
    result, document = cli("audit", "archive", "--json")
    assert document["archive"] is None and "nothing older than" in document["summary"]


def test_the_cli_says_when_a_run_stopped(cli, app, aged_now, audit, archive_dir):
    with open(os.path.join(archive_dir, archive_name(1, 3)), "wb") as handle:
        handle.write(b"other")
    app.extensions["settings"] = app.extensions["settings"].replace(audit=audit)
    result, _ = cli("audit", "archive")
    assert result.exit_code == 1 and "retention stopped, nothing removed" in result.output
    assert _seqs(aged_now)[0] == 1


@pytest.mark.parametrize(("at", "months", "expected"), [
    (dt.datetime(2030, 5, 31, tzinfo=dt.UTC), 3, dt.datetime(2030, 2, 28, tzinfo=dt.UTC)),
    (dt.datetime(2030, 1, 15, tzinfo=dt.UTC), 1, dt.datetime(2029, 12, 15, tzinfo=dt.UTC)),
    (dt.datetime(2030, 3, 31, tzinfo=dt.UTC), 12, dt.datetime(2029, 3, 31, tzinfo=dt.UTC)),
    (dt.datetime(2032, 2, 29, tzinfo=dt.UTC), 12, dt.datetime(2031, 2, 28, tzinfo=dt.UTC)),
])
def test_months_are_calendar_months(at, months, expected):
    assert months_before(at, months) == expected


def test_retention_settings(tmp_path):
    from console.settings import ConfigError

    read = AuditSettings.from_env({"AUDIT_ARCHIVE_DIR": str(tmp_path),
                                   "AUDIT_RETENTION_MONTHS": "24"})
    assert (read.archive_dir, read.retention_months) == (str(tmp_path), 24)
    assert AuditSettings.from_env({}).retention_months == 12
    with pytest.raises(ConfigError, match="AUDIT_ARCHIVE_DIR="):
        AuditSettings.from_env({"AUDIT_ARCHIVE_DIR": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="AUDIT_RETENTION_MONTHS"):
        AuditSettings.from_env({"AUDIT_RETENTION_MONTHS": "0"})
