"""Checkpoints kept outside the database (AUDIT_CHECKPOINT_DIR): written once by the job,
checked by `audit verify` and the page, and what they catch that the database's own
checkpoints cannot: a database rewritten from a checkpoint onward, its later checkpoints
deleted.

The append-only guards are lifted inside the test's (rolled-back) transaction to play the
attacker with direct database access, as in test_checkpoints.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text

from console.audit.checkpoint_files import (
    CheckpointFileError,
    file_name,
    verify_files,
    write,
)
from console.audit.checkpoints import NO_KEY, describe, sign_newest, verify_log
from console.audit.export_format import checkpoint_line
from console.audit.models import AuditCheckpoint, AuditEvent
from console.audit.settings import AuditSettings, checkpoint_directory
from console.scheduler.models import JobStatus
from console.scheduler.registry import JOBS
from console.scheduler.runner import run_job
from console.settings import ConfigError
from tests.audit.conftest import add_rows, keyed_settings, lift_guards, rewrite_whole_chain

NOW = dt.datetime(2030, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)

settings = pytest.fixture(keyed_settings, name="settings")


@pytest.fixture
def kept(tmp_path):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    return str(directory)


@pytest.fixture
def signed(db_session, signing_key, kept):
    """Checkpoints at rows 3 and 6, each also kept in the directory."""
    add_rows(db_session, 3)
    assert sign_newest(db_session, signing_key, NOW, kept).endswith(f"; 1 kept in {kept}")
    add_rows(db_session, 3)
    sign_newest(db_session, signing_key, NOW + dt.timedelta(hours=1), kept)
    return db_session


def _files(kept):
    return sorted(n for n in os.listdir(kept) if not n.startswith("."))


def _hash_of(session):
    return lambda seq: session.scalar(select(AuditEvent.row_hash).where(AuditEvent.seq == seq))


# --- writing ------------------------------------------------------------------------------

def test_each_checkpoint_is_one_read_only_file_with_its_export_line(signed, kept):
    assert _files(kept) == [file_name(3), file_name(6)] == [
        "audit-checkpoint-000000000003.json", "audit-checkpoint-000000000006.json"]
    checkpoint = signed.scalar(select(AuditCheckpoint).where(AuditCheckpoint.seq == 6))
    path = os.path.join(kept, file_name(6))
    with open(path, "rb") as handle:
        assert handle.read() == checkpoint_line(checkpoint)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444


def test_writing_the_same_checkpoint_again_is_a_no_op_and_a_different_one_is_refused(
        signed, kept):
    checkpoint = signed.scalar(select(AuditCheckpoint).where(AuditCheckpoint.seq == 6))
    write(kept, checkpoint)  # a retried job
    assert _files(kept) == [file_name(3), file_name(6)]  # no temporary file left behind
    other = dataclasses.replace(_as_plain(checkpoint), hash="0" * 64)
    with pytest.raises(CheckpointFileError, match="already holds a different checkpoint"):
        write(kept, other)
    assert _files(kept) == [file_name(3), file_name(6)]


@dataclasses.dataclass(frozen=True)
class _Plain:
    seq: int
    hash: str
    signed_at: dt.datetime
    key_id: str
    signature: str


def _as_plain(checkpoint) -> _Plain:
    return _Plain(checkpoint.seq, checkpoint.hash, checkpoint.signed_at, checkpoint.key_id,
                  checkpoint.signature)


def test_a_directory_it_cannot_read_fails_the_run(db_session, signing_key, tmp_path):
    add_rows(db_session, 2)
    missing = str(tmp_path / "gone")
    with pytest.raises(CheckpointFileError, match=f"cannot read {missing}"):
        sign_newest(db_session, signing_key, NOW, missing)


def test_a_failed_write_fails_the_job_and_no_checkpoint_is_taken(
        app, db_session, test_database, kept, monkeypatch):
    add_rows(db_session, 2)
    db_session.commit()
    _configure(app, kept)

    def full_disk(_descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("console.audit.checkpoint_files.os.fsync", full_disk)
    assert run_job(test_database, _job(), app) == "failure"
    assert _files(kept) == []  # not even the temporary file
    db_session.expire_all()
    assert db_session.scalars(select(AuditCheckpoint)).all() == []
    status = db_session.scalar(select(JobStatus).where(JobStatus.name == "audit.checkpoint"))
    assert "No space left on device" in status.last_summary


def _configure(app, kept):
    settings = app.extensions["settings"]
    app.extensions["settings"] = settings.replace(
        audit=dataclasses.replace(settings.audit, checkpoint_dir=kept))


def _job():
    return next(j for j in JOBS if j.name == "audit.checkpoint")


def test_a_directory_configured_later_gets_every_earlier_checkpoint(db_session, signing_key,
                                                                    kept):
    add_rows(db_session, 2)
    sign_newest(db_session, signing_key, NOW)
    add_rows(db_session, 2)
    summary = sign_newest(db_session, signing_key, NOW + dt.timedelta(hours=1), kept)
    assert summary.endswith(f"; 2 kept in {kept}")
    assert _files(kept) == [file_name(2), file_name(4)]
    assert sign_newest(db_session, signing_key, NOW, kept) == \
        "no new audit rows since checkpoint #4"


def test_the_scheduled_job_keeps_checkpoints_in_the_configured_directory(
        app, db_session, test_database, kept):
    add_rows(db_session, 2)
    _configure(app, kept)
    assert run_job(test_database, _job(), app) == "success"
    assert _files(kept) == [file_name(2)]


# --- verifying ----------------------------------------------------------------------------

def test_an_honest_log_verifies_against_its_files(signed, signing_key, kept):
    result = verify_log(signed, signing_key.public_key(), checkpoint_dir=kept)
    assert result["ok"]
    assert result["checkpoint_files"] == {"status": "verified", "directory": kept, "count": 2,
                                          "checked": 2, "latest_seq": 6, "seq": None,
                                          "problem": None}
    assert f"checkpoint files in {kept}: 2 verified, latest #6" in describe(result)
    assert verify_log(signed, signing_key.public_key())["checkpoint_files"] is None


def test_a_rewrite_with_the_later_checkpoints_deleted_is_caught_only_outside(
        signed, signing_key, kept):
    lift_guards(signed)
    signed.execute(text("DELETE FROM audit_checkpoint WHERE seq = 6"))
    rewrite_whole_chain(signed, changed_seq=5)
    inside = verify_log(signed, signing_key.public_key())
    assert inside["ok"]  # what the database holds agrees with itself
    result = verify_log(signed, signing_key.public_key(), checkpoint_dir=kept)
    assert not result["ok"] and result["broken_seq"] == 6
    assert result["problem"] == (f"{file_name(6)}: checkpoint at row 6: row 6's hash differs "
                                 "from the signed hash (the chain was rewritten)")
    assert "FAILED after 1 verified" in describe(result)


def test_a_chain_cut_short_is_caught_by_a_file_beyond_its_end(signed, signing_key, kept):
    lift_guards(signed)
    signed.execute(text("DELETE FROM audit_checkpoint WHERE seq = 6"))
    signed.execute(text("DELETE FROM audit_event WHERE seq > 4"))
    head = signed.get(AuditEvent, 4)
    signed.execute(text("UPDATE audit_head SET seq = 4, row_hash = :h"), {"h": head.row_hash})
    result = verify_log(signed, signing_key.public_key(), checkpoint_dir=kept)
    assert not result["ok"]
    assert "the chain has no row 6" in result["problem"]


@pytest.mark.parametrize(("change", "problem"), [
    (lambda p: p.write_bytes(b"not json"), "is not a checkpoint"),
    (lambda p: p.write_bytes(b"x" * 5000), "is too large to be a checkpoint"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b'"seq":6', b'"seq":7')),
     "names row 7, not the row 6 of its file name"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b'"signed_at":"2030', b'"signed_at":"2031')),
     "checkpoint at row 6: the signature does not verify"),
])
def test_an_edited_file_is_named(signed, signing_key, kept, change, problem):
    path = _writable(kept, 6)
    change(path)
    result = verify_files(kept, signing_key.public_key(), _hash_of(signed), no_key=NO_KEY)
    assert (result.status, result.seq, result.checked) == ("failed", 6, 1)
    assert result.problem.startswith(file_name(6)) and problem in result.problem


def _writable(kept, seq):
    from pathlib import Path

    path = Path(kept) / file_name(seq)
    path.chmod(0o644)
    return path


def test_a_file_that_cannot_be_read_is_named(signed, signing_key, kept):
    path = _writable(kept, 3)
    path.unlink()
    path.mkdir()  # a directory where the file was
    result = verify_files(kept, signing_key.public_key(), _hash_of(signed), no_key=NO_KEY)
    assert result.status == "failed" and "cannot be read" in result.problem


def test_files_signed_by_another_key_fail(signed, kept):
    other = Ed25519PrivateKey.generate().public_key()
    result = verify_files(kept, other, _hash_of(signed), no_key=NO_KEY)
    assert result.status == "failed" and "not by the key given" in result.problem


def test_without_a_key_or_files_it_says_so(signed, kept, tmp_path, signing_key):
    assert verify_files(kept, None, _hash_of(signed), no_key=NO_KEY).as_dict() == {
        "status": NO_KEY, "directory": kept, "count": 2, "checked": 0, "latest_seq": 6,
        "seq": None, "problem": None}
    (tmp_path / "empty").mkdir()
    empty = verify_files(str(tmp_path / "empty"), signing_key.public_key(), _hash_of(signed),
                         no_key=NO_KEY)
    assert empty.status == "none" and empty.ok
    unreadable = verify_files(str(tmp_path / "nowhere"), signing_key.public_key(),
                              _hash_of(signed), no_key=NO_KEY)
    assert unreadable.status == "failed" and "cannot read" in unreadable.problem
    for report, words in ((verify_files(kept, None, _hash_of(signed), no_key=NO_KEY),
                           f"{NO_KEY}: 2 kept"), (empty, "none yet")):
        result = verify_log(signed, signing_key.public_key()) | {
            "checkpoint_files": report.as_dict()}
        assert words in describe(result)


def test_other_files_in_the_directory_are_left_alone(signed, signing_key, kept):
    with open(os.path.join(kept, "README.txt"), "w") as handle:
        handle.write("checkpoints of the sandbox console")
    assert verify_log(signed, signing_key.public_key(), checkpoint_dir=kept)["ok"]


# --- settings, CLI and page ---------------------------------------------------------------

def test_the_setting_must_name_an_existing_directory(tmp_path):
    assert checkpoint_directory("") is None and checkpoint_directory("  ") is None
    assert checkpoint_directory(str(tmp_path)) == str(tmp_path)
    for bad in (str(tmp_path / "missing"), str(tmp_path / "file"), "a\x00b"):
        (tmp_path / "file").write_text("x")
        with pytest.raises(ConfigError, match=r"AUDIT_CHECKPOINT_DIR=.* is not an existing"):
            checkpoint_directory(bad)
    assert AuditSettings.from_env({"AUDIT_CHECKPOINT_DIR": str(tmp_path)}).checkpoint_dir == \
        str(tmp_path)


def test_cli_verify_checks_a_directory_given_or_configured(cli, app, signed, kept):
    result, document = cli("audit", "verify", "--json", "--checkpoint-dir", kept)
    assert result.exit_code == 0, result.output
    assert document["checkpoint_files"]["checked"] == 2
    lift_guards(signed)
    signed.execute(text("DELETE FROM audit_checkpoint WHERE seq = 6"))
    rewrite_whole_chain(signed, changed_seq=5)
    signed.commit()
    _configure(app, kept)
    result, _ = cli("audit", "verify")
    assert result.exit_code == 1
    assert f"checkpoint files in {kept}: FAILED after 1 verified" in result.output


def test_the_verify_panel_shows_the_files(as_compliance, app, signed, kept):
    _configure(app, kept)
    body = as_compliance.get("/audit/verify").get_data(as_text=True)
    assert "Checkpoints kept outside the database: 2 verified" in body
