"""Audit export fixtures: a signing key, its public half in a file, and a real export of a real
chain (written by ``record`` on the test's backend) to verify or tamper with."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import select, text

from console.audit import Actor, AuditAction, record
from console.audit.chain import GENESIS_HASH, fields_of, row_hash
from console.audit.export import ExportWindow, export_log
from console.audit.export_format import public_key_pem
from console.audit.models import AuditEvent
from console.audit.settings import AuditSettings
from tests.conftest import make_settings

SIGNING_KEY = Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return SIGNING_KEY


@pytest.fixture
def public_key_file(tmp_path, signing_key) -> Path:
    path = tmp_path / "audit-export.pub.pem"
    path.write_text(public_key_pem(signing_key.public_key()))
    return path


def keyed_settings(db_factory, signing_key):
    """Test settings with an export signing key configured. A module whose app needs the key
    says ``settings = pytest.fixture(keyed_settings, name="settings")``."""
    return make_settings(db_factory.shared_url,
                         audit=AuditSettings(export_signing_key=signing_key))


def write_export(result, path: Path) -> Path:
    with result.file, path.open("wb") as out:
        out.write(result.file.read())
    return path


@pytest.fixture
def exported(db_session, signing_key, tmp_path) -> Path:
    """Six events (details and all optional columns filled on some), exported in full."""
    for n in range(6):
        record(db_session, actor=Actor(Actor.cli("x").type, f"user{n}", source_ip="192.0.2.9",
                                       request_id=f"req-{n}"),
               action=AuditAction.AUDIT_LOG_VIEW, details={"n": n, "note": "ünïcode"})
    result = export_log(db_session, actor=Actor.cli("exporter"), signing_key=signing_key,
                        window=ExportWindow(), max_rows=1000)
    return write_export(result, tmp_path / "export.zip")


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rewrite(source: Path, target: Path, *, compression=zipfile.ZIP_DEFLATED,
            **replaced: bytes | None) -> Path:
    """A copy of the export with members replaced (name with '.' as '_'); None drops one."""
    contents = members(source)
    for key, value in replaced.items():
        name = key.replace("_", ".", 1) if key != "extra" else "notes.txt"
        if value is None:
            contents.pop(name, None)
        else:
            contents[name] = value
    with zipfile.ZipFile(target, "w", compression=compression) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return target


def lift_guards(session):
    """Play the attacker with database access: drop the append-only guards (audit_event and
    audit_checkpoint) inside the test's rolled-back transaction."""
    if session.bind.dialect.name == "postgresql":
        session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        session.execute(text("ALTER TABLE audit_checkpoint DISABLE TRIGGER USER"))
    else:
        for trigger in ("audit_event_no_update", "audit_event_no_delete",
                        "audit_checkpoint_no_update", "audit_checkpoint_no_delete"):
            session.execute(text(f"DROP TRIGGER {trigger}"))


def rewrite_whole_chain(session, changed_seq=2):
    """The attacker's rewrite: change one row, recompute every hash with the chain function."""
    prev = GENESIS_HASH
    for row in session.execute(select(AuditEvent.__table__).order_by(AuditEvent.seq)).all():
        fields = fields_of(row)
        if row.seq == changed_seq:
            fields["actor_id"] = "mallory"
        digest = row_hash(prev, fields)
        session.execute(text("UPDATE audit_event SET actor_id = :a, prev_hash = :p, "
                             "row_hash = :h WHERE seq = :s"),
                        {"a": fields["actor_id"], "p": prev, "h": digest, "s": row.seq})
        prev = digest
    session.execute(text("UPDATE audit_head SET row_hash = :h"), {"h": prev})


def add_rows(session, n: int, at=None, who: str = "user") -> None:
    """``n`` audit events (``who0``, ``who1``... viewing the log), at ``at`` if given."""
    for i in range(n):
        record(session, actor=Actor.cli(f"{who}{i}"), action=AuditAction.AUDIT_LOG_VIEW,
               details={"n": i}, at=at)
    session.flush()
