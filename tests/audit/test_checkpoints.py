"""Signed checkpoints: the ``audit.checkpoint`` job signs the newest chain row, and verification
catches what the chain walk alone cannot: a chain rewritten with every hash recomputed, and
forged, edited or misplaced checkpoints.

The append-only guards are lifted inside the test's (rolled-back) transaction to play the
attacker with direct database access, as in test_verify.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from console.audit import Actor, AuditAction, record
from console.audit.chain import fields_of, row_hash
from console.audit.checkpoint_format import checkpoint_problem, sign_checkpoint
from console.audit.checkpoints import (
    NO_KEY,
    CheckpointRefused,
    checkpoint_job,
    describe,
    sign_newest,
    verify_checkpoints,
    verify_log,
)
from console.audit.export_format import key_fingerprint, public_key_pem
from console.audit.models import AuditCheckpoint, AuditEvent
from console.audit.services import AuditTamperingRefused
from console.audit.settings import AuditSettings
from console.db import utcnow
from console.scheduler.models import JobStatus
from console.scheduler.registry import JOBS
from console.scheduler.runner import run_job
from tests.audit.conftest import add_rows, keyed_settings, lift_guards, rewrite_whole_chain

OTHER_KEY = Ed25519PrivateKey.generate()
NOW = dt.datetime(2030, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


settings = pytest.fixture(keyed_settings, name="settings")


@pytest.fixture
def chain(db_session):
    add_rows(db_session, 6)
    return db_session


@pytest.fixture
def signed(db_session, signing_key):
    """Three rows, a checkpoint at row 3, three more rows and a checkpoint at row 6."""
    chain = db_session
    add_rows(chain, 3)
    assert sign_newest(chain, signing_key, NOW).startswith("signed checkpoint at row #3")
    add_rows(chain, 3)
    assert sign_newest(chain, signing_key, NOW + dt.timedelta(hours=1)).startswith(
        "signed checkpoint at row #6")
    return chain


def _checkpoints(session):
    return session.execute(select(AuditCheckpoint.__table__).order_by(AuditCheckpoint.seq)).all()


# --- the job -----------------------------------------------------------------------------------

def test_the_job_signs_the_newest_row_with_a_signature_that_verifies(chain, signing_key):
    summary = sign_newest(chain, signing_key, NOW)
    (checkpoint,) = _checkpoints(chain)
    newest = chain.get(AuditEvent, 6)
    assert summary == (f"signed checkpoint at row #6 (6 new rows, key "
                       f"{key_fingerprint(signing_key.public_key())})")
    assert (checkpoint.seq, checkpoint.hash, checkpoint.signed_at) == (6, newest.row_hash, NOW)
    assert checkpoint.key_id == key_fingerprint(signing_key.public_key())
    assert checkpoint_problem(signing_key.public_key(), checkpoint, newest.row_hash) is None
    # No audit row for the checkpoint itself: the next run has nothing to sign.
    assert chain.scalar(select(func.max(AuditEvent.seq))) == 6


def test_the_job_skips_when_nothing_is_new_and_signs_again_after_new_rows(chain, signing_key):
    sign_newest(chain, signing_key, NOW)
    assert sign_newest(chain, signing_key, NOW) == "no new audit rows since checkpoint #6"
    assert len(_checkpoints(chain)) == 1
    add_rows(chain, 2)
    assert sign_newest(chain, signing_key, NOW).startswith("signed checkpoint at row #8 (2 new")
    assert [c.seq for c in _checkpoints(chain)] == [6, 8]


def test_the_job_has_nothing_to_sign_on_an_empty_log(db_session, signing_key):
    assert sign_newest(db_session, signing_key, NOW) == "no audit rows yet"
    assert _checkpoints(db_session) == []


def test_the_job_is_off_without_a_key(chain):
    assert sign_newest(chain, None, NOW) == ("checkpoints off: AUDIT_EXPORT_SIGNING_KEY is not "
                                             "set")
    assert _checkpoints(chain) == []


def test_the_job_refuses_to_vouch_for_rows_that_do_not_link_to_the_last_checkpoint(
        chain, signing_key):
    sign_newest(chain, signing_key, NOW)
    add_rows(chain, 2)
    lift_guards(chain)
    chain.execute(text("UPDATE audit_event SET actor_id = 'mallory' WHERE seq = 8"))
    with pytest.raises(CheckpointRefused, match="not signing row 8: row 8 was changed"):
        sign_newest(chain, signing_key, NOW)


def _job():
    (job,) = [job for job in JOBS if job.name == "audit.checkpoint"]
    return job


def _status(test_database):
    with test_database.transaction() as session:
        return session.scalar(select(JobStatus).where(JobStatus.name == "audit.checkpoint"))


def test_the_scheduled_job_uses_the_configured_key_and_records_its_summary(
        app, chain, test_database, signing_key):
    assert _job().every == dt.timedelta(hours=1)
    assert run_job(test_database, _job(), app) == "success"
    status = _status(test_database)
    assert status.last_outcome == "success"
    assert status.last_summary.startswith("signed checkpoint at row #6")
    assert [c.seq for c in _checkpoints(chain)] == [6]


def test_the_scheduled_job_without_a_key_succeeds_and_says_checkpoints_are_off(
        app, chain, test_database):
    app.extensions["settings"] = app.extensions["settings"].replace(audit=AuditSettings())
    with app.app_context():
        assert checkpoint_job(chain, Actor.system("scheduler"), NOW).startswith(
            "checkpoints off")
    assert run_job(test_database, _job(), app) == "success"
    assert _status(test_database).last_summary == ("checkpoints off: AUDIT_EXPORT_SIGNING_KEY "
                                                   "is not set")


# --- verification ------------------------------------------------------------------------------

def test_an_honest_log_verifies_with_every_checkpoint(signed, signing_key):
    result = verify_log(signed, signing_key.public_key())
    assert result["ok"] and result["problem"] is None and result["rows"] == 6
    assert result["checkpoints"] == {
        "status": "verified", "count": 2, "checked": 2, "latest_seq": 6,
        "latest_signed_at": "2030-05-01T13:00:00.123456Z",
        "key_id": key_fingerprint(signing_key.public_key()), "seq": None, "problem": None,
        "uncovered": None}


def test_old_events_past_the_newest_checkpoint_are_a_warning_not_a_failure(signed,
                                                                           signing_key):
    now = dt.datetime.now(dt.UTC)
    for hours in (3, 2.5):
        record(signed, actor=Actor.cli("late"), action=AuditAction.AUDIT_LOG_VIEW,
               at=now - dt.timedelta(hours=hours))
    record(signed, actor=Actor.cli("fresh"), action=AuditAction.AUDIT_LOG_VIEW, at=now)
    signed.flush()
    result = verify_log(signed, signing_key.public_key(), now=now)
    assert result["ok"] and result["checkpoints"]["status"] == "verified"
    uncovered = result["checkpoints"]["uncovered"]
    assert (uncovered["count"], uncovered["first_seq"], uncovered["last_seq"]) == (2, 7, 8)
    assert ("WARNING: 2 events (#7 to #8) older than 2 h are not covered by a signed "
            "checkpoint") in describe(result)


def test_deleted_checkpoints_leave_old_events_uncovered(signed, signing_key):
    lift_guards(signed)
    signed.execute(text("DELETE FROM audit_checkpoint WHERE seq = 6"))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    result = verify_log(signed, signing_key.public_key(), now=later)
    assert result["ok"]  # what is left still verifies: the warning is the only trace
    uncovered = result["checkpoints"]["uncovered"]
    assert (uncovered["first_seq"], uncovered["last_seq"]) == (4, 6)
    assert "were checkpoints deleted?" in uncovered["warning"]


def test_without_a_key_checkpoints_are_reported_not_checked(signed):
    report = verify_checkpoints(signed, None)
    assert (report.status, report.ok, report.count, report.checked) == (NO_KEY, True, 2, 0)


def test_no_checkpoints_yet_is_reported_as_none(chain, signing_key):
    report = verify_checkpoints(chain, signing_key.public_key())
    assert (report.status, report.ok, report.count) == ("none", True, 0)


def test_a_fully_rewritten_chain_passes_the_walk_but_not_the_checkpoints(signed, signing_key):
    lift_guards(signed)
    rewrite_whole_chain(signed, changed_seq=2)
    result = verify_log(signed, signing_key.public_key())
    assert result["rows"] == 6 and result["checkpoints"]["status"] == "failed"
    assert not result["ok"] and result["broken_seq"] == 3
    assert result["problem"] == ("checkpoint at row 3: row 3's hash differs from the signed "
                                 "hash (the chain was rewritten)")


def test_a_rewrite_after_the_last_checkpoint_alone_is_not_caught_by_checkpoints(
        signed, signing_key):
    # The limit of the design, pinned down: rows after the newest checkpoint are vouched for by
    # the chain alone until the next run of the job (which refuses if they do not link).
    lift_guards(signed)
    add_rows(signed, 1)
    prev = signed.get(AuditEvent, 6).row_hash
    row = signed.execute(select(AuditEvent.__table__).where(AuditEvent.seq == 7)).one()
    forged = row_hash(prev, fields_of(row) | {"actor_id": "mallory"})
    signed.execute(text("UPDATE audit_event SET actor_id='mallory', row_hash=:h WHERE seq=7"),
                   {"h": forged})
    signed.execute(text("UPDATE audit_head SET row_hash = :h"), {"h": forged})
    assert verify_log(signed, signing_key.public_key())["ok"]


@pytest.mark.parametrize(("statement", "problem"), [
    ("UPDATE audit_checkpoint SET hash = :fake WHERE seq = 3",
     "checkpoint at row 3: the signature does not verify"),
    ("UPDATE audit_checkpoint SET seq = 2 WHERE seq = 3",
     "checkpoint at row 2: the signature does not verify"),
])
def test_an_edited_checkpoint_is_named(signed, signing_key, statement, problem):
    lift_guards(signed)
    signed.execute(text(statement), {"fake": "f" * 64} if ":fake" in statement else {})
    result = verify_log(signed, signing_key.public_key())
    assert not result["ok"] and result["problem"].startswith(problem)
    assert result["checkpoints"]["checked"] == 0


def _insert_checkpoint(session, *, seq, hash, key, claimed_key_id=None, signature=None):
    key_id, good = sign_checkpoint(key, seq=seq, hash=hash, signed_at=NOW)
    session.add(AuditCheckpoint(seq=seq, hash=hash, signed_at=NOW,
                                key_id=claimed_key_id or key_id, signature=signature or good))
    session.flush()


def test_a_forged_signature_is_named(chain, signing_key):
    real_id = key_fingerprint(signing_key.public_key())
    _insert_checkpoint(chain, seq=6, hash=chain.get(AuditEvent, 6).row_hash, key=OTHER_KEY,
                       claimed_key_id=real_id)
    report = verify_checkpoints(chain, signing_key.public_key())
    assert (report.status, report.seq) == ("failed", 6)
    assert report.problem == ("checkpoint at row 6: the signature does not verify (the "
                              "checkpoint was changed or forged)")


def test_a_signature_that_is_not_base64_is_named(chain, signing_key):
    _insert_checkpoint(chain, seq=6, hash=chain.get(AuditEvent, 6).row_hash, key=signing_key,
                       signature="not base64!")
    assert "does not verify" in verify_checkpoints(chain, signing_key.public_key()).problem


def test_checkpoints_signed_by_another_key_name_both_keys(signed):
    report = verify_checkpoints(signed, OTHER_KEY.public_key())
    assert report.status == "failed" and report.seq == 3
    assert report.problem.startswith("checkpoint at row 3 says it was signed by SHA256:")
    assert key_fingerprint(OTHER_KEY.public_key()) in report.problem


def test_a_checkpoint_beyond_the_end_of_the_chain_is_named(chain, signing_key):
    _insert_checkpoint(chain, seq=99, hash="a" * 64, key=signing_key)
    result = verify_log(chain, signing_key.public_key())
    assert not result["ok"] and result["broken_seq"] == 99
    assert result["problem"] == ("checkpoint at row 99: the chain has no row 99 (rows were "
                                 "removed or the chain was rebuilt shorter)")


def test_a_broken_chain_is_named_before_the_checkpoints(signed, signing_key):
    lift_guards(signed)
    signed.execute(text("UPDATE audit_event SET actor_id = 'mallory' WHERE seq = 2"))
    result = verify_log(signed, signing_key.public_key())
    assert not result["ok"] and result["broken_seq"] == 2 and "changed" in result["problem"]


def test_verification_reads_checkpoints_in_batches(signed, signing_key):
    report = verify_checkpoints(signed, signing_key.public_key(), batch=1)
    assert (report.status, report.checked) == ("verified", 2)


# --- append-only -------------------------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "UPDATE audit_checkpoint SET hash = 'x'",
    "DELETE FROM audit_checkpoint",
])
def test_the_database_refuses_checkpoint_updates_and_deletes(signed, statement):
    savepoint = signed.begin_nested()
    with pytest.raises(DBAPIError, match="audit_checkpoint is append-only"):
        signed.execute(text(statement))
    savepoint.rollback()
    assert len(_checkpoints(signed)) == 2


def test_truncating_checkpoints_is_refused_on_postgresql(signed):
    if signed.bind.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    savepoint = signed.begin_nested()
    with pytest.raises(DBAPIError, match="audit_checkpoint is append-only"):
        signed.execute(text("TRUNCATE audit_checkpoint"))
    savepoint.rollback()


@pytest.mark.parametrize("change", ["update", "delete"])
def test_the_application_cannot_update_or_delete_checkpoints(signed, change):
    checkpoint = signed.scalars(select(AuditCheckpoint)).first()
    if change == "update":
        checkpoint.hash = "f" * 64
    else:
        signed.delete(checkpoint)
    with pytest.raises(AuditTamperingRefused, match="append-only"):
        signed.flush()
    signed.rollback()


# --- the CLI -----------------------------------------------------------------------------------

def test_cli_verify_json_reports_the_checkpoints(cli, signed, signing_key):
    result, document = cli("audit", "verify", "--json")
    assert result.exit_code == 0, result.output
    assert document["ok"] is True and document["rows"] == 6
    assert set(document) == {"ok", "rows", "head_seq", "head_hash", "broken_seq", "problem",
                             "checkpoints", "checkpoint_files", "archives"}
    assert document["checkpoints"]["status"] == "verified"
    assert document["checkpoints"]["checked"] == 2
    audited = signed.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_CHAIN_VERIFY.value)).one()
    assert audited.outcome == "success" and '"status":"verified"' in audited.details


def test_cli_verify_human_output(cli, signed):
    result, _ = cli("audit", "verify")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "audit chain intact: 6 events, head #6"
    assert lines[1].startswith("checkpoints: 2 verified, latest #6 signed "
                               "2030-05-01T13:00:00.123456Z (key SHA256:")


def test_cli_verify_without_checkpoints_says_none_yet(cli, chain):
    result, _ = cli("audit", "verify")
    assert result.exit_code == 0
    assert result.output.splitlines()[1].startswith("checkpoints: none yet")


def test_cli_verify_exits_1_on_a_rewritten_chain(cli, signed):
    lift_guards(signed)
    rewrite_whole_chain(signed)
    result, document = cli("audit", "verify", "--json")
    assert result.exit_code == 1
    assert document["ok"] is False and document["broken_seq"] == 3
    assert "rewritten" in document["problem"]
    human, _ = cli("audit", "verify")
    assert human.exit_code == 1
    assert human.output.splitlines() == [
        f"audit chain BROKEN at event #3: {document['problem']}",
        f"checkpoints: FAILED after 0 verified: {document['problem']}"]


def test_cli_verify_without_a_key_says_not_checked(cli, app, signed):
    app.extensions["settings"] = app.extensions["settings"].replace(audit=AuditSettings())
    result, document = cli("audit", "verify", "--json")
    assert result.exit_code == 0
    assert document["checkpoints"]["status"] == NO_KEY and document["checkpoints"]["count"] == 2
    human, _ = cli("audit", "verify")
    assert human.output.splitlines()[1] == (
        "checkpoints: not checked (no key): 2 stored; set AUDIT_EXPORT_SIGNING_KEY or pass "
        "--public-key")


def test_cli_verify_with_a_public_key_file(cli, app, signed, tmp_path, public_key_file):
    app.extensions["settings"] = app.extensions["settings"].replace(audit=AuditSettings())
    result, document = cli("audit", "verify", "--public-key", str(public_key_file), "--json")
    assert result.exit_code == 0 and document["checkpoints"]["status"] == "verified"
    other = tmp_path / "other.pem"
    other.write_text(public_key_pem(OTHER_KEY.public_key()))
    result, document = cli("audit", "verify", "--public-key", str(other), "--json")
    assert result.exit_code == 1 and "says it was signed by" in document["problem"]


def test_cli_verify_with_an_unreadable_public_key_exits_2(cli, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    result, _ = cli("audit", "verify", "--public-key", str(bad))
    assert result.exit_code == 2 and "is not a PEM public key" in result.output


def test_signed_at_survives_the_database_round_trip(chain, signing_key):
    at = utcnow()
    sign_newest(chain, signing_key, at)
    chain.expire_all()
    assert chain.scalars(select(AuditCheckpoint)).one().signed_at == at
