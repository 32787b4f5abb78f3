"""The streamed export (console.audit.export.stream_export): the zip leaves in chunks as it is
written into an unseekable sink, in its own transaction, which audits the export before the
zip's last bytes (the central directory) are given; a stream stopped early audits nothing."""

from __future__ import annotations

import contextlib
import hashlib
import json

import pytest
from sqlalchemy import func, select

from console.audit import Actor, AuditAction, offline
from console.audit.export import ExportWindow, prepare, stream_export
from console.audit.models import AuditEvent
from tests.audit.conftest import add_rows

EXPORTER = Actor.cli("exporter")


def _exports(session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_LOG_EXPORT.value))


@pytest.fixture
def transaction(db_session):
    """The test's session as the stream's own transaction; records how it ended."""
    ended: list[str] = []

    @contextlib.contextmanager
    def factory():
        ended.append("open")
        try:
            yield db_session
        except BaseException:
            ended.append("rolled back")
            raise
        ended.append("committed")

    factory.ended = ended
    return factory


def _stream(db_session, transaction, signing_key, **kwargs):
    bounds = prepare(db_session, signing_key=signing_key, window=ExportWindow(), max_rows=10_000,
                     events_format=kwargs.get("events_format", "jsonl"))
    return stream_export(transaction, actor=EXPORTER, signing_key=signing_key,
                         window=ExportWindow(), bounds=bounds,
                         exported_at=db_session.scalar(select(func.max(AuditEvent.occurred_at))),
                         **kwargs)


@pytest.mark.parametrize("events_format", ["jsonl", "csv"])
def test_chunks_leave_as_written_and_the_export_is_audited_before_the_last(
        db_session, transaction, signing_key, tmp_path, public_key_file, capsys,
        events_format):
    add_rows(db_session, 400)
    chunks = _stream(db_session, transaction, signing_key, chunk=1024,
                     events_format=events_format)
    assert transaction.ended == []  # nothing is read until the first chunk is asked for
    first = next(chunks)
    assert first.startswith(b"PK\x03\x04") and transaction.ended == ["open"]
    assert _exports(db_session) == 0
    received, audited_before = [first], []
    for chunk in chunks:
        audited_before.append(_exports(db_session))
        received.append(chunk)
    # Bounded chunks (constant memory): a chunk is at most the limit plus one row's worth.
    assert len(received) > 5 and max(len(c) for c in received[:-1]) < 1024 + 1024
    # Every chunk but the last left before the audit row; the last after it was committed.
    assert audited_before[:-1] == [0] * (len(received) - 2) and audited_before[-1] == 1
    assert transaction.ended == ["open", "committed"]
    data = b"".join(received)
    (row,) = db_session.scalars(select(AuditEvent).where(
        AuditEvent.action == AuditAction.AUDIT_LOG_EXPORT.value)).all()
    details = json.loads(row.details)
    assert row.target_id == details["file_sha256"] == hashlib.sha256(data).hexdigest()
    assert details["count"] == 400 and details["format"] == events_format
    path = tmp_path / "streamed.zip"
    path.write_bytes(data)
    assert offline.main([str(path), "--public-key", str(public_key_file)]) == 0
    assert "export valid: 400 events" in capsys.readouterr().out


def test_a_stream_stopped_early_is_rolled_back_and_not_audited(db_session, transaction,
                                                               signing_key):
    add_rows(db_session, 200)
    chunks = _stream(db_session, transaction, signing_key, chunk=512)
    next(chunks)
    chunks.close()  # the client went away
    assert transaction.ended == ["open", "rolled back"] and _exports(db_session) == 0
