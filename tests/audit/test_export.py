"""The export service: a window becomes a contiguous run of the chain, written with every hashed
column, a signed manifest and its own audit row in the same transaction."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import re
import zipfile

import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction, Target, record
from console.audit import export as export_module
from console.audit.chain import GENESIS_HASH, fields_of
from console.audit.export import (
    ExportNotConfigured,
    ExportRefused,
    ExportWindow,
    export_log,
)
from console.audit.export_format import key_fingerprint
from console.audit.models import AuditEvent
from console.audit.verify import verify_chain
from tests.audit.conftest import members, write_export

EXPORTER = Actor.cli("exporter")


def _day(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=dt.UTC)


@pytest.fixture
def november(db_session):
    """One event a day, 1 to 10 November, noon UTC."""
    return [record(db_session, actor=Actor.cli(f"day{d}"), action=AuditAction.AUDIT_LOG_VIEW,
                   at=_day(d)) for d in range(1, 11)]


_OPEN: list = []


@pytest.fixture(autouse=True)
def _close_exports():
    yield
    while _OPEN:
        _OPEN.pop().file.close()


def _export(db_session, key, window=None, **kwargs):
    result = export_log(db_session, actor=EXPORTER, signing_key=key,
                        window=window or ExportWindow(),
                        max_rows=kwargs.pop("max_rows", 1000), **kwargs)
    _OPEN.append(result)
    return result


def _contents(result) -> dict[str, bytes]:
    with zipfile.ZipFile(result.file) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_whole_log_is_exported_with_every_hashed_column(db_session, november,
                                                            signing_key):
    result = _export(db_session, signing_key)
    contents = _contents(result)
    assert list(contents) == ["events.jsonl", "checkpoints.jsonl", "manifest.json",
                              "manifest.sig"]
    assert contents["checkpoints.jsonl"] == b""
    lines = contents["events.jsonl"].decode().splitlines()
    assert len(lines) == 10
    for line, event in zip(lines, november, strict=True):
        assert json.loads(line) == {**fields_of(event), "prev_hash": event.prev_hash,
                                    "hash": event.row_hash}
    manifest = json.loads(contents["manifest.json"])
    assert manifest == {
        "format": "finci-console-audit-export/1", "events_format": "jsonl",
        "first_seq": november[0].seq, "last_seq": november[-1].seq, "count": 10,
        "anchor_prev_hash": GENESIS_HASH, "last_hash": november[-1].row_hash,
        "events_sha256": hashlib.sha256(contents["events.jsonl"]).hexdigest(),
        "checkpoints_count": 0, "checkpoints_sha256": hashlib.sha256(b"").hexdigest(),
        "exported_at": manifest["exported_at"],
        "exported_by": {"actor_type": "cli", "actor_id": "exporter"},
        "window": {"since": None, "until": None},
        "key_id": key_fingerprint(signing_key.public_key()),
    }
    signing_key.public_key().verify(base64.b64decode(contents["manifest.sig"]),
                                    contents["manifest.json"])


def test_a_window_exports_its_events_anchored_on_the_row_before(db_session, november,
                                                                signing_key):
    window = ExportWindow(_day(3, 0), _day(6, 0))
    result = _export(db_session, signing_key, window)
    manifest = result.manifest
    assert (manifest["first_seq"], manifest["last_seq"], manifest["count"]) == (
        november[2].seq, november[4].seq, 3)
    assert manifest["anchor_prev_hash"] == november[1].row_hash
    assert manifest["window"] == {"since": "2026-11-03T00:00:00.000000Z",
                                  "until": "2026-11-06T00:00:00.000000Z"}
    actors = [json.loads(line)["actor_id"]
              for line in _contents(result)["events.jsonl"].splitlines()]
    assert actors == ["day3", "day4", "day5"]
    assert result.filename == f"audit-export-{november[2].seq}-{november[4].seq}.zip"


def test_the_range_stays_contiguous_around_a_back_dated_row(db_session, november,
                                                            signing_key):
    late = record(db_session, actor=Actor.cli("backdated"), action=AuditAction.AUDIT_LOG_VIEW,
                  at=_day(1))
    after = record(db_session, actor=Actor.cli("after"), action=AuditAction.AUDIT_LOG_VIEW,
                   at=_day(20))
    result = _export(db_session, signing_key, ExportWindow(_day(10, 0), None))
    actors = [json.loads(line)["actor_id"]
              for line in _contents(result)["events.jsonl"].splitlines()]
    assert actors == ["day10", "backdated", "after"]
    assert (result.manifest["first_seq"], result.manifest["last_seq"]) == (
        november[-1].seq, after.seq)
    assert late.seq == november[-1].seq + 1


def test_the_export_is_audited_in_the_same_transaction(db_session, november, signing_key):
    at = _day(15)
    result = _export(db_session, signing_key, ExportWindow(_day(2, 0), _day(4, 0)), at=at)
    (audited,) = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_LOG_EXPORT.value)).all()
    assert (audited.actor_type, audited.actor_id, audited.target_type, audited.target_id) == (
        "cli", "exporter", "audit_export", result.file_sha256)
    assert audited.occurred_at == at and result.manifest["exported_at"] == (
        "2026-11-15T12:00:00.000000Z")
    details = json.loads(audited.details)
    assert details == {
        "window": {"since": "2026-11-02T00:00:00.000000Z",
                   "until": "2026-11-04T00:00:00.000000Z"},
        "first_seq": november[1].seq, "last_seq": november[2].seq, "count": 2, "format": "jsonl",
        "file_sha256": result.file_sha256, "events_sha256": result.manifest["events_sha256"],
        "key_id": result.manifest["key_id"]}
    data = result.file.read()
    assert hashlib.sha256(data).hexdigest() == result.file_sha256 and len(data) == result.size
    # The export's own row extends the chain it exported.
    assert audited.seq == november[-1].seq + 1 and verify_chain(db_session).ok


def test_without_a_key_the_export_is_refused_and_nothing_is_audited(db_session, november):
    with pytest.raises(ExportNotConfigured, match="set AUDIT_EXPORT_SIGNING_KEY"):
        _export(db_session, None)
    assert db_session.scalar(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_LOG_EXPORT.value)) is None


def test_an_empty_window_is_refused(db_session, november, signing_key):
    with pytest.raises(ExportRefused, match="no audit events between 2026-12-01"):
        _export(db_session, signing_key, ExportWindow(_day(30, 0) + dt.timedelta(days=1)))
    with pytest.raises(ExportRefused, match="no audit events between the start and 2026-11-01"):
        _export(db_session, signing_key, ExportWindow(None, _day(1, 0)))


def test_a_window_bigger_than_the_limit_is_refused(db_session, november, signing_key):
    with pytest.raises(ExportRefused, match=re.escape(
            "10 events between the start and now: more than the export limit of 9 "
            "(AUDIT_EXPORT_MAX_ROWS)")):
        _export(db_session, signing_key, max_rows=9)
    assert _export(db_session, signing_key, max_rows=10).manifest["count"] == 10


def test_a_window_must_end_after_it_starts():
    with pytest.raises(ExportRefused, match="the window must end after it starts"):
        ExportWindow(_day(5), _day(5))


def test_large_exports_spill_to_disk_and_still_verify(db_session, november, signing_key):
    result = _export(db_session, signing_key, spool_bytes=256)
    assert result.file._rolled  # on disk, not in memory
    assert len(_contents(result)["events.jsonl"].splitlines()) == 10


def test_a_failure_while_building_closes_the_spool_and_audits_nothing(
        db_session, november, signing_key, monkeypatch):
    spools = []

    class Spy(io.BytesIO):
        def __init__(self, max_size):
            super().__init__()
            spools.append(self)

    def broken_sign(_key, _manifest):
        raise RuntimeError("HSM unavailable")

    monkeypatch.setattr(export_module.tempfile, "SpooledTemporaryFile", Spy)
    monkeypatch.setattr(export_module.fmt, "sign", broken_sign)
    with pytest.raises(RuntimeError, match="HSM unavailable"):
        _export(db_session, signing_key)
    assert spools[0].closed
    assert db_session.scalar(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_LOG_EXPORT.value)) is None


def test_no_card_number_reaches_the_exported_file(db_session, signing_key, tmp_path,
                                                  pan_scanner):
    record(db_session, actor=EXPORTER, action=AuditAction.CARDS_STATUS_REQUEST,
           target=Target("card", "c-1"),
           details={"card": "5555555555554444", "note": "pan 4111 1111 1111 1111"})
    path = write_export(_export(db_session, signing_key), tmp_path / "e.zip")
    before = len(pan_scanner.hits)
    for name, data in members(path).items():
        pan_scanner.scan(data.decode(), f"export:{name}")
    assert pan_scanner.hits[before:] == []
    assert "555555******4444" in members(path)["events.jsonl"].decode()
