"""The auditors' offline verifier: a real export verifies; any single changed, deleted, inserted
or reordered row, an edited manifest, a replaced signature or the wrong key is exit 1 naming the
problem; unreadable input is exit 2 with a message, never a traceback."""

from __future__ import annotations

import ast
import base64
import json
import os
import runpy
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from console.audit import offline
from console.audit.chain import row_hash
from console.audit.export_format import manifest_bytes, public_key_pem, sign
from tests.audit.conftest import members, rewrite

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *args) -> tuple[int, str, str]:
    code = offline.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows_of(export: Path) -> list[dict]:
    return [json.loads(line) for line in members(export)["events.jsonl"].splitlines()]


def jsonl(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode() + b"\n" for r in rows)


def rehash(row: dict, prev: str) -> dict:
    """What an attacker can do without the key: recompute a row's links and hash."""
    fields = {k: v for k, v in row.items() if k not in {"prev_hash", "hash"}}
    return {**row, "prev_hash": prev, "hash": row_hash(prev, fields)}


def manifest_of(export: Path) -> dict:
    return json.loads(members(export)["manifest.json"])


def resigned(export: Path, target: Path, key: Ed25519PrivateKey, **changes) -> Path:
    """A manifest changed and signed again with the real key (only the signer can do this)."""
    data = manifest_bytes({**manifest_of(export), **changes})
    return rewrite(export, target, manifest_json=data, manifest_sig=sign(key, data))


# --- valid -----------------------------------------------------------------------------------

def test_a_real_export_verifies_and_the_summary_names_range_key_and_exporter(
        exported, public_key_file, signing_key, capsys):
    code, out, err = run(capsys, exported, "--public-key", public_key_file)
    rows = rows_of(exported)
    assert code == 0, out + err
    assert out.startswith(f"export valid: 6 events, #{rows[0]['seq']} to #{rows[-1]['seq']}")
    assert "by cli:exporter" in out and manifest_of(exported)["key_id"] in out
    assert rows[-1]["hash"] in out and err == ""


def test_json_output_reports_the_signed_range(exported, public_key_file, capsys):
    code, out, _ = run(capsys, exported, "--public-key", public_key_file, "--json")
    document = json.loads(out)
    manifest = manifest_of(exported)
    assert code == 0 and document["ok"] is True
    assert (document["first_seq"], document["last_seq"], document["count"]) == (
        manifest["first_seq"], manifest["last_seq"], 6)
    assert document["last_hash"] == rows_of(exported)[-1]["hash"]


def test_the_module_runs_as_a_script_without_app_settings_or_database(
        exported, public_key_file):
    # A bare environment: no CONSOLE_*, no DATABASE_URL, no secrets. Only the code is needed.
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "console.audit.offline", str(exported), "--public-key",
         str(public_key_file)], cwd=exported.parent, env=env, capture_output=True, text=True,
        check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("export valid: 6 events") and result.stderr == ""


def test_running_the_module_as_main_exits_with_the_verdict(exported, public_key_file,
                                                           monkeypatch):
    monkeypatch.setattr(sys, "argv", ["offline", str(exported), "--public-key",
                                      str(public_key_file), "--json"])
    monkeypatch.delitem(sys.modules, "console.audit.offline")
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("console.audit.offline", run_name="__main__")
    assert exit_.value.code == 0


def test_the_verifier_imports_only_the_stdlib_cryptography_and_the_chain_modules():
    allowed_console = {"console.audit", "console.audit.chain", "console.audit.export_format",
                       "console.audit.checkpoint_format"}
    for module in ("offline", "export_format", "chain", "checkpoint_format"):
        tree = ast.parse((ROOT / "console" / "audit" / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert (name in allowed_console or top == "cryptography" or top == "__future__"
                        or top in sys.stdlib_module_names), f"{module}.py imports {name}"


# --- tampering: exit 1, naming the problem ---------------------------------------------------

def _tampered_rows(exported, tmp_path, change) -> Path:
    rows = rows_of(exported)
    return rewrite(exported, tmp_path / "tampered.zip", events_jsonl=jsonl(change(rows)))


def _verdict(capsys, path, key_file) -> tuple[int, dict]:
    code, out, _ = run(capsys, path, "--public-key", key_file, "--json")
    return code, json.loads(out)


def test_a_changed_field_is_named(exported, public_key_file, tmp_path, capsys):
    def change(rows):
        rows[2]["actor_id"] = "mallory"
        return rows

    code, verdict = _verdict(capsys, _tampered_rows(exported, tmp_path, change), public_key_file)
    seq = rows_of(exported)[2]["seq"]
    assert code == 1 and verdict["broken_seq"] == seq
    assert verdict["problem"] == (
        f"events.jsonl: row {seq} was changed after it was written (hash mismatch)")


def test_a_changed_row_is_named_in_the_human_output_too(exported, public_key_file, tmp_path,
                                                        capsys):
    def change(rows):
        rows[1]["details"] = rows[1]["details"].replace('"n":1', '"n":7')
        return rows

    code, out, _ = run(capsys, _tampered_rows(exported, tmp_path, change), "--public-key",
                       public_key_file)
    assert code == 1
    assert out.startswith("export INVALID: events.jsonl: row ") and "was changed" in out


def test_a_changed_row_with_every_later_hash_recomputed_breaks_the_signed_last_hash(
        exported, public_key_file, tmp_path, capsys):
    def change(rows):
        rows[2]["outcome"] = "failure"
        for i in range(2, len(rows)):
            rows[i] = rehash(rows[i], rows[i - 1]["hash"])
        return rows

    code, verdict = _verdict(capsys, _tampered_rows(exported, tmp_path, change), public_key_file)
    assert code == 1 and verdict["broken_seq"] == rows_of(exported)[-1]["seq"]
    assert "hash differs from the manifest's last hash" in verdict["problem"]


@pytest.mark.parametrize("index", [0, 3, 5], ids=["first", "middle", "last"])
def test_a_deleted_row_is_named(exported, public_key_file, tmp_path, capsys, index):
    rows = rows_of(exported)
    code, verdict = _verdict(
        capsys, _tampered_rows(exported, tmp_path, lambda r: r[:index] + r[index + 1:]),
        public_key_file)
    assert code == 1 and verdict["broken_seq"] == rows[index]["seq"]
    assert "missing" in verdict["problem"]


def test_a_row_inserted_with_renumbered_successors_is_named(exported, public_key_file,
                                                            tmp_path, capsys):
    def change(rows):
        forged = rehash({**rows[2], "actor_id": "mallory", "seq": rows[3]["seq"]},
                        rows[2]["hash"])
        later = [{**r, "seq": r["seq"] + 1} for r in rows[3:]]
        return [*rows[:3], forged, *later]

    code, verdict = _verdict(capsys, _tampered_rows(exported, tmp_path, change), public_key_file)
    seq = rows_of(exported)[3]["seq"] + 1
    assert code == 1 and verdict["broken_seq"] == seq
    assert f"row {seq} does not link" in verdict["problem"]


def test_a_duplicated_row_is_named_out_of_order(exported, public_key_file, tmp_path, capsys):
    code, verdict = _verdict(
        capsys, _tampered_rows(exported, tmp_path, lambda r: [*r[:3], r[1], *r[3:]]),
        public_key_file)
    assert code == 1 and verdict["broken_seq"] == rows_of(exported)[1]["seq"]
    assert "appears out of order" in verdict["problem"]


def test_a_validly_chained_row_appended_after_the_last_is_named(exported, public_key_file,
                                                               tmp_path, capsys):
    def change(rows):
        extra = rehash({**rows[-1], "seq": rows[-1]["seq"] + 1, "actor_id": "mallory"},
                       rows[-1]["hash"])
        return [*rows, extra]

    code, verdict = _verdict(capsys, _tampered_rows(exported, tmp_path, change), public_key_file)
    last = rows_of(exported)[-1]["seq"]
    assert code == 1 and verdict["broken_seq"] == last + 1
    assert verdict["problem"] == (
        f"events.jsonl: row {last + 1} was added after the manifest's last row {last}")


def test_swapped_rows_are_named(exported, public_key_file, tmp_path, capsys):
    def change(rows):
        rows[1], rows[4] = rows[4], rows[1]
        return rows

    code, verdict = _verdict(capsys, _tampered_rows(exported, tmp_path, change), public_key_file)
    assert code == 1 and verdict["broken_seq"] == rows_of(exported)[1]["seq"]
    assert "missing" in verdict["problem"]


def test_a_reformatted_but_equal_line_is_caught_by_the_file_hash(exported, public_key_file,
                                                                tmp_path, capsys):
    lines = members(exported)["events.jsonl"].splitlines(keepends=True)
    lines[1] = json.dumps(json.loads(lines[1]), indent=None).encode() + b"\n"  # spaces added
    path = rewrite(exported, tmp_path / "t.zip", events_jsonl=b"".join(lines))
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and "differs from the SHA-256 in the manifest" in verdict["problem"]


def test_an_emptied_events_file_is_named(exported, public_key_file, tmp_path, capsys):
    path = rewrite(exported, tmp_path / "t.zip", events_jsonl=b"")
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and "no events, but the manifest lists rows" in verdict["problem"]


@pytest.mark.parametrize("change", [{"count": 5}, {"last_seq": 1}, {"window": {}},
                                    {"exported_by": {"actor_type": "user", "actor_id": "x"}}])
def test_an_edited_manifest_fails_the_signature(exported, public_key_file, tmp_path, capsys,
                                                change):
    data = manifest_bytes({**manifest_of(exported), **change})
    path = rewrite(exported, tmp_path / "t.zip", manifest_json=data)
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1
    assert verdict["problem"] == ("the signature does not verify: manifest.json or manifest.sig "
                                  "was changed after export")


@pytest.mark.parametrize("signature", ["other-key", "garbage", "not-base64"])
def test_a_replaced_signature_fails(exported, public_key_file, tmp_path, capsys, signature):
    data = members(exported)["manifest.json"]
    replaced = {"other-key": sign(Ed25519PrivateKey.generate(), data),
                "garbage": base64.b64encode(b"x" * 64),
                "not-base64": b"%%%"}[signature]
    path = rewrite(exported, tmp_path / "t.zip", manifest_sig=replaced)
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and verdict["problem"].startswith("the signature does not verify")


def test_the_wrong_public_key_is_named(exported, tmp_path, capsys):
    other = tmp_path / "other.pem"
    other.write_text(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    code, verdict = _verdict(capsys, exported, other)
    assert code == 1 and verdict["problem"].startswith("wrong public key: the export says it "
                                                       "was signed by SHA256:")


def test_an_unsigned_extra_file_is_refused(exported, public_key_file, tmp_path, capsys):
    path = rewrite(exported, tmp_path / "t.zip", extra=b"trust me")
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and verdict["problem"] == (
        "the export holds files the signature does not cover: notes.txt")


def test_a_duplicate_member_is_refused(exported, public_key_file, tmp_path, capsys):
    path = tmp_path / "dup.zip"
    path.write_bytes(exported.read_bytes())
    with pytest.warns(UserWarning, match="Duplicate name"), \
            zipfile.ZipFile(path, "a") as archive:
        archive.writestr("events.jsonl", b"")
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and "events.jsonl" in verdict["problem"]


def test_a_signed_manifest_that_miscounts_is_named(exported, public_key_file, signing_key,
                                                   tmp_path, capsys):
    path = resigned(exported, tmp_path / "t.zip", signing_key, count=7)
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and verdict["problem"] == (
        "events.jsonl: 6 events, but the manifest counts 7")


# --- unreadable input: exit 2 ----------------------------------------------------------------

def _error(capsys, *args) -> str:
    code, out, err = run(capsys, *args)
    assert code == 2, out + err
    assert out == "" and err.startswith("error: ") and "Traceback" not in err
    return err


def test_not_a_zip(tmp_path, public_key_file, capsys):
    path = tmp_path / "x.zip"
    path.write_text("hello")
    assert "is not a zip file" in _error(capsys, path, "--public-key", public_key_file)


def test_a_missing_file(tmp_path, public_key_file, capsys):
    err = _error(capsys, tmp_path / "absent.zip", "--public-key", public_key_file)
    assert "cannot read" in err and "No such file" in err


@pytest.mark.parametrize("member", ["events.jsonl", "manifest.json", "manifest.sig"])
def test_a_missing_member(exported, public_key_file, tmp_path, capsys, member):
    path = rewrite(exported, tmp_path / "t.zip", **{member.replace(".", "_"): None})
    assert f"the export has no {member}" in _error(capsys, path, "--public-key",
                                                   public_key_file)


@pytest.mark.parametrize(("manifest", "message"), [
    (b"{not json", "manifest.json is not valid JSON"),
    (b"[1, 2]", "manifest.json is not a JSON object"),
])
def test_a_manifest_that_is_not_json(exported, public_key_file, tmp_path, capsys, manifest,
                                     message):
    path = rewrite(exported, tmp_path / "t.zip", manifest_json=manifest)
    assert message in _error(capsys, path, "--public-key", public_key_file)


@pytest.mark.parametrize(("change", "message"), [
    ({"format": "other/9"}, "format is not"),
    ({"first_seq": "1"}, "first_seq is not a positive number"),
    ({"count": 0}, "count is not a positive number"),
    ({"last_hash": "abc"}, "last_hash is not a SHA-256"),
])
def test_a_signed_manifest_the_console_would_not_write(exported, public_key_file, signing_key,
                                                       tmp_path, capsys, change, message):
    path = resigned(exported, tmp_path / "t.zip", signing_key, **change)
    assert message in _error(capsys, path, "--public-key", public_key_file)


def test_an_oversized_manifest(exported, public_key_file, tmp_path, capsys):
    path = rewrite(exported, tmp_path / "t.zip",
                   manifest_json=b" " * (offline.MAX_MANIFEST_BYTES + 1))
    assert "manifest.json is larger than" in _error(capsys, path, "--public-key",
                                                    public_key_file)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: b"{oops\n", "line 2 is not valid JSON"),
    (lambda r: b"[]\n", "line 2 is not an audit event"),
    (lambda r: jsonl([{**r, "extra": 1}]), "line 2 is not an audit event"),
    (lambda r: jsonl([{**r, "seq": str(r["seq"])}]), "line 2: seq is not a whole number"),
    (lambda r: jsonl([{**r, "seq": True}]), "line 2: seq is not a whole number"),
    (lambda r: jsonl([{**r, "actor_id": 5}]), "line 2: actor_id is not text"),
    (lambda r: jsonl([{**r, "target_id": 5}]), "line 2: target_id is neither text nor null"),
    (lambda r: jsonl([{**r, "hash": "XYZ"}]), "line 2: prev_hash and hash must be"),
    (lambda r: jsonl([{**r, "occurred_at": "yesterday"}]), "line 2: occurred_at is not"),
    (lambda r: b"\xff\xfe\n", "line 2 is not valid JSON"),
])
def test_an_unreadable_event_line(exported, public_key_file, tmp_path, capsys, edit, message):
    rows = rows_of(exported)
    lines = members(exported)["events.jsonl"].splitlines(keepends=True)
    lines[1] = edit(rows[1])
    path = rewrite(exported, tmp_path / "t.zip", events_jsonl=b"".join(lines))
    assert f"events.jsonl {message}" in _error(capsys, path, "--public-key", public_key_file)


def test_an_overlong_event_line(exported, public_key_file, capsys, monkeypatch):
    monkeypatch.setattr(offline, "MAX_LINE_BYTES", 64)
    assert "has a line longer than 64 bytes" in _error(capsys, exported, "--public-key",
                                                        public_key_file)


@pytest.mark.parametrize("member", ["manifest.json", "events.jsonl"])
def test_a_corrupted_zip_member(exported, public_key_file, tmp_path, capsys, member):
    # Stored (uncompressed) so one byte of the member can be flipped; its CRC no longer matches.
    path = rewrite(exported, tmp_path / "stored.zip", compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    content = members(path)[member]
    at = data.index(content) + len(content) // 2
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    err = _error(capsys, path, "--public-key", public_key_file)
    assert f"cannot read {member} from the export" in err


def test_public_key_files_that_cannot_be_used(exported, tmp_path, capsys):
    missing = _error(capsys, exported, "--public-key", tmp_path / "absent.pem")
    assert "cannot read the public key" in missing
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    assert "is not a PEM public key" in _error(capsys, exported, "--public-key", garbage)
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                        .public_key().public_bytes(Encoding.PEM,
                                                   PublicFormat.SubjectPublicKeyInfo))
    assert "is not an Ed25519 public key" in _error(capsys, exported, "--public-key", rsa_key)


def test_unreadable_input_with_json_prints_the_error_as_json(tmp_path, public_key_file,
                                                             capsys):
    code, out, _ = run(capsys, tmp_path / "absent.zip", "--public-key", public_key_file,
                       "--json")
    document = json.loads(out)
    assert code == 2 and document["ok"] is False and "cannot read" in document["error"]


def test_missing_arguments_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        offline.main(["only-a-file.zip"])
    assert exit_.value.code == 2
    assert "--public-key" in capsys.readouterr().err
