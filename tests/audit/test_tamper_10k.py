"""Issue 15's acceptance: a 10,000-row export with checkpoints, then many random single changes
(a field edited, a row deleted, a copy inserted, two rows swapped, the manifest, a checkpoint
line or the signature changed), each in a zip of its own. Every one is exit 1 naming the first
bad row or the changed member, from ``console.audit.offline`` in-process and, for one case of
each kind, from the one-file verifier in a bare interpreter; the untouched export passes."""

from __future__ import annotations

import base64
import json
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from console.audit import Actor, offline, standalone
from console.audit.chain import canonical_json
from console.audit.export import ExportWindow, export_log
from console.audit.export_format import manifest_bytes
from tests.audit.conftest import members, rewrite, write_export
from tests.audit.test_standalone import run_bare
from tests.support.audit_chain import write_chain

ROWS = 10_000
CHECKPOINT_EVERY = 1_000
CASES = 28  # 4 of each kind; ~0.4 s each in-process on 10,000 rows
_BUILT: dict[str, Path] = {}


@pytest.fixture
def big_export(backend, request, signing_key, tmp_path_factory) -> Path:
    """Built once per backend and reused: the tests only read the file."""
    if backend not in _BUILT:
        session = request.getfixturevalue("db_session")
        write_chain(session, signing_key, rows=ROWS, checkpoint_every=CHECKPOINT_EVERY)
        result = export_log(session, actor=Actor.cli("auditor"), signing_key=signing_key,
                            window=ExportWindow(), max_rows=ROWS + 10)
        _BUILT[backend] = write_export(result, tmp_path_factory.mktemp(backend) / "big.zip")
    return _BUILT[backend]


@dataclass(frozen=True)
class Case:
    kind: str
    what: str
    replaced: dict  # rewrite() arguments
    broken_seq: int | None
    problem: str  # a part of the expected problem text


_FIELDS = ("actor_id", "action", "outcome", "details", "occurred_at", "target_id", "source_ip",
           "request_id")


def _line(row: dict) -> bytes:
    return canonical_json(row).encode() + b"\n"


def _edited(row: dict, field: str) -> dict:
    value = row[field]
    if field == "occurred_at":
        micro = int(value[-7:-1])
        changed = f"{value[:-7]}{(micro + 1) % 1_000_000:06d}Z"
    elif field == "details":
        changed = canonical_json({**json.loads(value), "n": -1})
    elif field == "outcome":
        changed = "failure" if value != "failure" else "success"
    else:
        changed = f"{value or ''}mallory"
    return {**row, field: changed}


def cases(export: Path, rng: random.Random) -> list[Case]:
    contents = members(export)
    lines = contents["events.jsonl"].splitlines(keepends=True)
    manifest = json.loads(contents["manifest.json"])
    first = manifest["first_seq"]
    checkpoint_lines = contents["checkpoints.jsonl"].splitlines(keepends=True)
    kinds = ["edit", "delete", "insert", "swap", "manifest", "checkpoint", "signature"]
    out = []
    for number in range(CASES):
        kind = kinds[number % len(kinds)]  # every kind, in a seeded random order of positions
        n = len(lines)
        if kind == "edit":
            i, field = rng.randrange(n), rng.choice(_FIELDS)
            changed = list(lines)
            changed[i] = _line(_edited(json.loads(lines[i]), field))
            out.append(Case(kind, f"{field} of row {first + i}",
                            {"events_jsonl": b"".join(changed)}, first + i,
                            f"row {first + i} was changed after it was written"))
        elif kind == "delete":
            i = rng.randrange(n)
            out.append(Case(kind, f"row {first + i}",
                            {"events_jsonl": b"".join(lines[:i] + lines[i + 1:])}, first + i,
                            "missing"))
        elif kind == "insert":
            j, k = rng.randrange(n), rng.randrange(n + 1)
            changed = [*lines[:k], lines[j], *lines[k:]]
            # The walk expects seq first+k at line k: a copy from later is "row first+k is
            # missing"; one from earlier (or of the row just before) is "row j out of order".
            seq_j = first + j
            broken = min(first + k, seq_j)
            out.append(Case(kind, f"a copy of row {seq_j} at line {k + 1}",
                            {"events_jsonl": b"".join(changed)}, broken,
                            "missing" if first + k < seq_j else "out of order"))
        elif kind == "swap":
            i, j = sorted(rng.sample(range(n), 2))
            changed = list(lines)
            changed[i], changed[j] = changed[j], changed[i]
            out.append(Case(kind, f"rows {first + i} and {first + j}",
                            {"events_jsonl": b"".join(changed)}, first + i,
                            f"row {first + i} is missing"))
        elif kind == "manifest":
            key = rng.choice(["count", "last_seq", "last_hash", "events_sha256", "exported_at",
                              "exported_by", "checkpoints_count"])
            value = manifest[key]
            changed_value = {"exported_by": {"actor_type": "user", "actor_id": "mallory"},
                             "exported_at": "2031-01-01T00:00:00.000000Z"}.get(
                key, value + 1 if isinstance(value, int) else "0" * 64)
            data = manifest_bytes({**manifest, key: changed_value})
            assert data != contents["manifest.json"]
            out.append(Case(kind, f"manifest {key}", {"manifest_json": data}, None,
                            "the signature does not verify: manifest.json or manifest.sig"))
        elif kind == "checkpoint":
            i = rng.randrange(len(checkpoint_lines))
            changed = list(checkpoint_lines)
            choice = rng.choice(["hash", "drop", "seq"])
            if choice == "drop":
                del changed[i]
            else:
                row = json.loads(changed[i])
                row = ({**row, "hash": "f" * 64} if choice == "hash"
                       else {**row, "seq": row["seq"] - 1})
                changed[i] = _line(row)
            out.append(Case(kind, f"checkpoint line {i + 1} ({choice})",
                            {"checkpoints_jsonl": b"".join(changed)}, None,
                            "checkpoints.jsonl: the file differs from the SHA-256"))
        else:
            signature = bytearray(base64.b64decode(contents["manifest.sig"]))
            at = rng.randrange(len(signature))
            signature[at] ^= 1 << rng.randrange(8)
            out.append(Case(kind, f"signature byte {at}",
                            {"manifest_sig": base64.b64encode(bytes(signature)) + b"\n"},
                            None, "the signature does not verify"))
    return out


def _verdict(capsys, path: Path, key_file: Path) -> tuple[int, dict]:
    code = offline.main([str(path), "--public-key", str(key_file), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_the_untouched_10000_row_export_passes(big_export, public_key_file, capsys):
    code, verdict = _verdict(capsys, big_export, public_key_file)
    assert code == 0, verdict
    assert verdict["count"] == ROWS and verdict["checkpoints"] == ROWS // CHECKPOINT_EVERY


def test_every_random_single_change_is_exit_1_naming_the_first_bad_row_or_member(
        big_export, public_key_file, tmp_path, capsys):
    wrong = []
    for number, case in enumerate(cases(big_export, random.Random(15))):
        path = rewrite(big_export, tmp_path / f"case{number}.zip",
                       compression=zipfile.ZIP_STORED, **case.replaced)
        code, verdict = _verdict(capsys, path, public_key_file)
        if (code, verdict.get("broken_seq")) != (1, case.broken_seq) or (
                case.problem not in verdict.get("problem", "")):
            wrong.append((case.kind, case.what, code, verdict))
        path.unlink()
    assert wrong == []


def test_the_one_file_verifier_names_the_same_for_one_case_of_each_kind(
        big_export, public_key_file, tmp_path):
    verifier = tmp_path / standalone.FILENAME
    verifier.write_text(standalone.build().text, encoding="utf-8")
    sample = {}
    for case in cases(big_export, random.Random(15)):
        sample.setdefault(case.kind, case)
    assert len(sample) == 7
    untouched = run_bare(verifier, big_export, "--public-key", public_key_file, "--json",
                         cwd=tmp_path)
    assert untouched.returncode == 0 and json.loads(untouched.stdout)["count"] == ROWS
    for kind, case in sample.items():
        path = rewrite(big_export, tmp_path / f"{kind}.zip", compression=zipfile.ZIP_STORED,
                       **case.replaced)
        result = run_bare(verifier, path, "--public-key", public_key_file, "--json",
                          cwd=tmp_path)
        verdict = json.loads(result.stdout)
        assert (result.returncode, verdict["broken_seq"]) == (1, case.broken_seq), (kind, verdict)
        assert case.problem in verdict["problem"], (kind, verdict)
