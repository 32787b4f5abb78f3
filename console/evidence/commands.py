"""``flask --app wsgi evidence run --out DIR``: the twelve sandbox steps, judged, as a signed pack.

Sandbox only: the run creates cards and sends FINCI-shaped traffic, which must never reach a
production database. The webhook secret is the console's own (the first configured), unless
``--secret-file`` names another. Exit codes: 0 every step passed, 1 some step failed (the pack is
written anyway: a failing pack is evidence too), 2 usage or configuration error.
"""

from __future__ import annotations

import secrets
import string
from importlib import metadata
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from console import cli_types
from console.evidence.runner import DEFAULT_WAIT_S, EvidenceRun
from console.finci.webhook_signature import InvalidWebhookSecret, WebhookSecret
from console.simulator.sender import webhook_url

DEMO_CONSOLE_URL = "https://localhost:8443"


def console_version() -> str:
    try:
        return metadata.version("finci-console")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "unknown"


def _secret(settings, path: str | None) -> WebhookSecret:
    if path is not None:
        items = Path(path).read_text(encoding="utf-8").split()
        if not items:
            raise click.BadParameter("the file is empty", param_hint="--secret-file")
        try:
            return WebhookSecret.parse(items[0])
        except InvalidWebhookSecret as exc:
            raise click.BadParameter(str(exc), param_hint="--secret-file") from None
    if not settings.ingress.secrets:
        raise click.UsageError("the console has no webhook secret configured "
                               "(FINCI_WEBHOOK_SECRETS); give --secret-file")
    return settings.ingress.secrets[0]


@click.group("evidence", cls=AppGroup, help="Go-live evidence for FINCI's sandbox validation.")
def evidence_group():
    pass


@evidence_group.command("run", help="Drive FINCI's twelve sandbox steps against this console "
                        "and write the evidence pack (JSON per step, report.html, signed "
                        "manifest) into DIR.")
@click.option("--out", "out", required=True, type=cli_types.Path(file_okay=False, path_type=Path),
              help="A new (or empty) folder for the pack.")
@click.option("--console-url", default=DEMO_CONSOLE_URL, show_default=True,
              help="The console's base URL; webhooks go to {URL}/webhooks/finci.")
@click.option("--secret-file", type=cli_types.Path(exists=True, dir_okay=False),
              help="Webhook signing secret to send with (default: the console's first).")
@click.option("--ca-file", type=cli_types.Path(exists=True, dir_okay=False),
              help="CA bundle to verify the console's TLS certificate (the demo's cert.pem).")
@click.option("--wait", "wait_s", type=click.FloatRange(0.1, 600), default=DEFAULT_WAIT_S,
              show_default=True, help="Seconds each step waits for the worker to process.")
@click.option("--drain", is_flag=True,
              help="Process the inbox from this command while waiting (no worker running).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def run_command(out: Path, console_url: str, secret_file: str | None, ca_file: str | None,
                wait_s: float, drain: bool, as_json: bool):
    from console.cli import cli_actor, emit
    from console.evidence.pack import PackError, check_out_dir, write_pack
    from console.unit_of_work import database

    settings = current_app.extensions["settings"]
    if settings.is_production:
        raise click.UsageError("evidence runs create cards and traffic: sandbox only")
    try:
        webhook_url(console_url)
        check_out_dir(out)
    except ValueError as exc:  # PackError included
        raise click.UsageError(str(exc)) from None
    secret = _secret(settings, secret_file)
    drainer = None
    if drain:
        from console.pipeline.worker import Worker

        drainer = Worker(database(), settings.ingress, name="evidence-drain").run_once
    run_id = "ev" + "".join(secrets.choice(string.ascii_lowercase + string.digits)
                            for _ in range(8))
    result = EvidenceRun(database(), console_url, secret, actor=cli_actor(), run_id=run_id,
                         wait_s=wait_s, verify=ca_file or True, drain=drainer).run()
    try:
        manifest = write_pack(out, result, environment=settings.environment.value,
                              version=console_version(), console_url=console_url,
                              signing_key=settings.audit.export_signing_key)
    except PackError as exc:
        raise click.UsageError(str(exc)) from None
    summary = {**result.summary(), "out": str(out), "signed": manifest["key_id"] is not None,
               "key_id": manifest["key_id"]}
    lines = [f"{'PASS' if s['passed'] else 'FAIL'}  {s['scenario']}"
             + (f"  - {s['reason']}" if s["reason"] else "") for s in summary["steps"]]
    lines.append(f"{result.passed}/{len(result.steps)} passed; pack in {out}"
                 + ("" if summary["signed"] else " (UNSIGNED: no audit export key configured)"))
    emit(as_json, summary, "\n".join(lines))
    if result.passed != len(result.steps):
        raise SystemExit(1)


@evidence_group.command("verify", help="Check an evidence pack (folder or .zip): every file's "
                        "SHA-256 against the manifest and the manifest's signature against the "
                        "audit export public key. Exit 1 if anything is wrong.")
@click.argument("pack", type=cli_types.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def verify_command(pack: Path, as_json: bool):
    import tempfile
    import zipfile

    from console.cli import emit
    from console.evidence.pack import verify_pack

    key = current_app.extensions["settings"].audit.export_signing_key
    public_key = key.public_key() if key is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        folder = pack
        if pack.is_file():
            if not zipfile.is_zipfile(pack):
                raise click.UsageError(f"{pack} is neither a pack folder nor a zip")
            with zipfile.ZipFile(pack) as archive:
                names = archive.namelist()
                if any("/" in n or "\\" in n or n.startswith(".") for n in names):
                    raise click.UsageError(f"{pack}: unexpected paths in the zip")
                archive.extractall(tmp)  # names checked above: flat files only
            folder = Path(tmp)
        if not (folder / "manifest.json").is_file():
            raise click.UsageError(f"{pack} is not an evidence pack (no manifest.json)")
        problems = verify_pack(folder, public_key)
    ok = not problems
    summary = {"pack": str(pack), "ok": ok, "signature_checked": public_key is not None,
               "first_problem": problems[0] if problems else None, "problems": problems}
    text = ("OK: every file matches the signed manifest" if ok
            else f"BAD: {problems[0]}" + "".join(f"\n  {p}" for p in problems[1:]))
    if public_key is None:
        text += "\n(no audit export key configured: signature NOT checked)"
    emit(as_json, summary, text)
    if not ok:
        raise SystemExit(1)
