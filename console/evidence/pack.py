"""The evidence pack on disk: one JSON file per step, ``report.html``, ``manifest.json`` (every
file with its SHA-256) and ``manifest.sig`` (Ed25519 over the manifest's exact bytes, the audit
export key's ``export_format.sign``) when a key is configured.

Every file passes through ``console.security.redaction`` on the way out: no full card number can
reach the pack, whatever a message carried. The pack is written to a fresh folder beside DIR and
moved into place at the end, so a failed run never leaves half a pack.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jinja2 import Environment, FileSystemLoader, select_autoescape

from console.audit.export_format import key_fingerprint, manifest_bytes, sign
from console.evidence.runner import RunResult
from console.finci.contract import is_finci_id
from console.security.redaction import redact_text, redact_value

FORMAT: Final = "finci-console-evidence/1"
MANIFEST: Final = "manifest.json"
SIGNATURE: Final = "manifest.sig"
REPORT: Final = "report.html"
TEMPLATES: Final = Path(__file__).resolve().parent.parent.parent / "templates"


class PackError(ValueError):
    """The output folder cannot take a pack (a clear message for the CLI)."""


def check_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PackError(f"{out} exists and is not an empty folder; choose a new one")


def _json_bytes(document: Any) -> bytes:
    safe = redact_value(document, is_finci_id)
    return (json.dumps(safe, indent=2, sort_keys=True, ensure_ascii=False, default=str)
            + "\n").encode()


def _render(context: dict[str, Any]) -> bytes:
    environment = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                              autoescape=select_autoescape(["html"]))
    html = environment.get_template("evidence/report.html").render(**context)
    return redact_text(html, is_finci_id).encode()


def write_pack(out: Path, result: RunResult, *, environment: str, version: str,
               console_url: str, signing_key: Ed25519PrivateKey | None) -> dict[str, Any]:
    """Write the pack into ``out`` (which must not exist or be empty); return the manifest."""
    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        files: dict[str, bytes] = {}
        for step in result.steps:
            files[f"{step.scenario.slug}.json"] = _json_bytes(step.evidence)
        files["summary.json"] = _json_bytes(result.summary())
        key_id = key_fingerprint(signing_key.public_key()) if signing_key else None
        files[REPORT] = _render({
            "result": result, "environment": environment, "version": version,
            "console_url": console_url, "key_id": key_id,
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        })
        manifest = {
            "format": FORMAT, "run_id": result.run_id, "environment": environment,
            "console_version": version, "started_at": result.started_at,
            "finished_at": result.finished_at, "passed": result.passed,
            "failed": len(result.steps) - result.passed, "key_id": key_id,
            "files": [{"path": name, "bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest()}
                      for name, data in sorted(files.items())],
        }
        files[MANIFEST] = manifest_bytes(manifest)
        if signing_key is not None:
            files[SIGNATURE] = sign(signing_key, files[MANIFEST])
        for name, data in files.items():
            (staging / name).write_bytes(data)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def verify_pack(folder: Path, public_key: Ed25519PublicKey | None) -> list[str]:
    """Problems with a pack: a file changed, missing or added, or a bad signature ([] = good).
    Without ``public_key`` only the digests are checked."""
    problems = []
    try:
        manifest_data = (folder / MANIFEST).read_bytes()
        manifest = json.loads(manifest_data)
    except (OSError, ValueError):
        return [f"{MANIFEST} is missing or unreadable"]
    listed = {entry["path"]: entry["sha256"] for entry in manifest.get("files", [])}
    for name, digest in sorted(listed.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name} was changed")
    extra = {p.name for p in folder.iterdir()} - set(listed) - {MANIFEST, SIGNATURE}
    problems += [f"{name} is not in the manifest" for name in sorted(extra)]
    if public_key is not None:
        try:
            signature = base64.b64decode((folder / SIGNATURE).read_bytes().strip(), validate=True)
            public_key.verify(signature, manifest_data)
        except (OSError, ValueError):
            problems.append(f"{SIGNATURE} is missing or unreadable")
        except InvalidSignature:
            problems.append(f"{SIGNATURE} does not match {MANIFEST}")
    return problems
