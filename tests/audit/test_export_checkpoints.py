"""Checkpoints travel with exports: ``checkpoints.jsonl`` holds the signed checkpoints of the
exported range, the signed manifest holds its SHA-256, and the offline verifier checks each one
(signature, and the exported row's hash at its seq). A chain rewritten in the database before
the export, with a freshly signed manifest, fails offline on the old checkpoints."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction, offline, record
from console.audit.checkpoint_format import sign_checkpoint
from console.audit.checkpoints import sign_newest
from console.audit.export import ExportWindow, export_log
from console.audit.export_format import checkpoint_line, manifest_bytes, sign
from console.audit.models import AuditCheckpoint
from tests.audit.conftest import (
    lift_guards,
    members,
    rewrite,
    rewrite_whole_chain,
    write_export,
)

NOW = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)


def _day(day: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, 12, tzinfo=dt.UTC)


@pytest.fixture
def log(db_session, signing_key):
    """Rows 1-6 (one a day, 1 to 6 November), checkpoints at rows 3 and 6."""
    for day in range(1, 7):
        record(db_session, actor=Actor.cli(f"day{day}"), action=AuditAction.AUDIT_LOG_VIEW,
               at=_day(day))
        if day in (3, 6):
            sign_newest(db_session, signing_key, NOW)
    return db_session


def _export(session, key, path: Path, window=None) -> Path:
    result = export_log(session, actor=Actor.cli("exporter"), signing_key=key,
                        window=window or ExportWindow(), max_rows=1000)
    return write_export(result, path)


def _verdict(capsys, path, key_file) -> tuple[int, dict]:
    code = offline.main([str(path), "--public-key", str(key_file), "--json"])
    return code, json.loads(capsys.readouterr().out)


def _resigned(export: Path, target: Path, key, *, checkpoints: bytes | None = None,
              drop: tuple[str, ...] = (), **changes) -> Path:
    """What only the signer can make: a changed checkpoints file and manifest, signed again."""
    contents = members(export)
    manifest = json.loads(contents["manifest.json"]) | changes
    replaced = {}
    if checkpoints is not None:
        manifest["checkpoints_sha256"] = hashlib.sha256(checkpoints).hexdigest()
        replaced["checkpoints_jsonl"] = checkpoints
    for key_name in drop:
        manifest.pop(key_name)
    data = manifest_bytes(manifest)
    return rewrite(export, target, manifest_json=data, manifest_sig=sign(key, data), **replaced)


def test_an_export_carries_its_checkpoints_and_verifies_offline(log, signing_key, tmp_path,
                                                                public_key_file, capsys):
    path = _export(log, signing_key, tmp_path / "e.zip")
    contents = members(path)
    stored = log.execute(select(AuditCheckpoint.__table__).order_by(AuditCheckpoint.seq)).all()
    assert contents["checkpoints.jsonl"] == b"".join(checkpoint_line(c) for c in stored)
    manifest = json.loads(contents["manifest.json"])
    assert manifest["checkpoints_count"] == 2
    assert manifest["checkpoints_sha256"] == hashlib.sha256(
        contents["checkpoints.jsonl"]).hexdigest()
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 0 and verdict["checkpoints"] == 2
    assert offline.main([str(path), "--public-key", str(public_key_file)]) == 0
    assert "  checkpoints: 2 verified" in capsys.readouterr().out


def test_a_window_carries_only_the_checkpoints_in_its_range(log, signing_key, tmp_path,
                                                            public_key_file, capsys):
    path = _export(log, signing_key, tmp_path / "e.zip", ExportWindow(_day(4), _day(6)))
    lines = members(path)["checkpoints.jsonl"].splitlines()
    assert [json.loads(line)["seq"] for line in lines] == []
    path = _export(log, signing_key, tmp_path / "f.zip", ExportWindow(_day(2), _day(5)))
    assert [json.loads(line)["seq"] for line in members(path)["checkpoints.jsonl"]
            .splitlines()] == [3]
    assert _verdict(capsys, path, public_key_file)[0] == 0


def test_a_chain_rewritten_before_export_fails_offline_on_its_checkpoints(
        log, signing_key, tmp_path, public_key_file, capsys):
    lift_guards(log)
    rewrite_whole_chain(log, changed_seq=2)
    path = _export(log, signing_key, tmp_path / "e.zip")
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and verdict["broken_seq"] == 3
    assert verdict["problem"] == ("checkpoints.jsonl: checkpoint at row 3: row 3's hash differs "
                                  "from the signed hash (the chain was rewritten)")


def test_an_edited_checkpoints_file_fails_its_hash(log, signing_key, tmp_path, public_key_file,
                                                   capsys):
    path = _export(log, signing_key, tmp_path / "e.zip")
    edited = members(path)["checkpoints.jsonl"].replace(b'"seq":3', b'"seq":2')
    tampered = rewrite(path, tmp_path / "t.zip", checkpoints_jsonl=edited)
    code, verdict = _verdict(capsys, tampered, public_key_file)
    assert code == 1 and verdict["problem"] == ("checkpoints.jsonl: the file differs from the "
                                                "SHA-256 in the manifest (edited after export)")


def _line(seq, hash_, key, signature=None) -> bytes:
    key_id, good = sign_checkpoint(key, seq=seq, hash=hash_, signed_at=NOW)
    return checkpoint_line(AuditCheckpoint(seq=seq, hash=hash_, signed_at=NOW, key_id=key_id,
                                           signature=signature or good))


def test_a_forged_checkpoint_signature_is_named(log, signing_key, tmp_path, public_key_file,
                                                capsys):
    path = _export(log, signing_key, tmp_path / "e.zip")
    row_3 = json.loads(members(path)["events.jsonl"].splitlines()[2])["hash"]
    forged = _line(3, row_3, signing_key, signature="A" * 88)
    code, verdict = _verdict(capsys, _resigned(path, tmp_path / "t.zip", signing_key,
                                               checkpoints=forged, checkpoints_count=1),
                             public_key_file)
    assert code == 1 and verdict["broken_seq"] == 3
    assert verdict["problem"].startswith("checkpoints.jsonl: checkpoint at row 3: the signature "
                                         "does not verify")


def test_a_checkpoint_outside_the_exported_rows_is_named(log, signing_key, tmp_path,
                                                         public_key_file, capsys):
    path = _export(log, signing_key, tmp_path / "e.zip")
    beyond = _line(99, "a" * 64, signing_key)
    code, verdict = _verdict(capsys, _resigned(path, tmp_path / "t.zip", signing_key,
                                               checkpoints=beyond, checkpoints_count=1),
                             public_key_file)
    assert code == 1 and "checkpoint at row 99: the chain has no row 99" in verdict["problem"]


def test_a_signed_manifest_that_miscounts_checkpoints_is_named(log, signing_key, tmp_path,
                                                               public_key_file, capsys):
    path = _export(log, signing_key, tmp_path / "e.zip")
    code, verdict = _verdict(capsys, _resigned(path, tmp_path / "t.zip", signing_key,
                                               checkpoints_count=5), public_key_file)
    assert code == 1 and verdict["problem"] == ("checkpoints.jsonl: 2 checkpoints, but the "
                                                "manifest counts 5")


def test_an_export_from_before_checkpoints_still_verifies(log, signing_key, tmp_path,
                                                          public_key_file, capsys):
    path = _export(log, signing_key, tmp_path / "e.zip")
    old = rewrite(_resigned(path, tmp_path / "s.zip", signing_key,
                            drop=("checkpoints_count", "checkpoints_sha256")),
                  tmp_path / "old.zip", checkpoints_jsonl=None)
    assert offline.main([str(old), "--public-key", str(public_key_file)]) == 0
    assert "checkpoints: none (the export predates checkpoints)" in capsys.readouterr().out
    # ...but then a checkpoints file is not covered by its signature.
    stray = rewrite(old, tmp_path / "stray.zip", checkpoints_jsonl=b"")
    code, verdict = _verdict(capsys, stray, public_key_file)
    assert code == 1 and verdict["problem"] == ("the export holds files the signature does not "
                                                "cover: checkpoints.jsonl")


def _error(capsys, path, key_file) -> str:
    code = offline.main([str(path), "--public-key", str(key_file)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "", captured.out
    return captured.err


def test_a_missing_checkpoints_file_is_unreadable_input(log, signing_key, tmp_path,
                                                        public_key_file, capsys):
    path = _export(log, signing_key, tmp_path / "e.zip")
    missing = rewrite(path, tmp_path / "t.zip", checkpoints_jsonl=None)
    assert "the export has no checkpoints.jsonl" in _error(capsys, missing, public_key_file)


@pytest.mark.parametrize("changes", [{"checkpoints_sha256": "abc"},
                                     {"checkpoints_count": "2"}])
def test_a_signed_manifest_with_malformed_checkpoint_fields(log, signing_key, tmp_path,
                                                            public_key_file, capsys, changes):
    path = _export(log, signing_key, tmp_path / "e.zip")
    bad = _resigned(path, tmp_path / "t.zip", signing_key, **changes)
    assert "checkpoints_sha256 or checkpoints_count is malformed" in _error(
        capsys, bad, public_key_file)


@pytest.mark.parametrize(("line", "message"), [
    (b"{not json\n", "checkpoints.jsonl line 1 is not valid JSON"),
    (b'{"seq": 3}\n', "line 1 is not a checkpoint (expected the keys"),
    (b'{"seq":"3","hash":"' + b"a" * 64 + b'","signed_at":"x","key_id":"k","signature":"s"}\n',
     "line 1: seq must be a whole number"),
    (b'{"seq":3,"hash":"' + b"a" * 64 + b'","signed_at":"x","key_id":"k","signature":"s"}\n',
     "line 1: signed_at is not a timestamp"),
    # The right shape, but no such day; and a real moment written other than the console does.
    (b'{"seq":3,"hash":"' + b"a" * 64 + b'","signed_at":"2030-02-30T00:00:00.000000Z",'
     b'"key_id":"k","signature":"s"}\n', "line 1: signed_at is not a timestamp"),
    (b'{"seq":3,"hash":"' + b"a" * 64 + b'","signed_at":"2030-1-01T00:00:00.000000Z",'
     b'"key_id":"k","signature":"s"}\n', "line 1: signed_at is not a timestamp"),
])
def test_unreadable_checkpoint_lines(log, signing_key, tmp_path, public_key_file, capsys, line,
                                     message):
    path = _export(log, signing_key, tmp_path / "e.zip")
    bad = _resigned(path, tmp_path / "t.zip", signing_key, checkpoints=line, checkpoints_count=1)
    assert message in _error(capsys, bad, public_key_file)
