"""`flask --app wsgi audit export|public-key|verifier`: signed exports of the audit log for
auditors, the key to check them and the one-file verifier to check them with.

    flask --app wsgi audit export [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--format csv|jsonl]
        --out FILE [--json]
    flask --app wsgi audit public-key [--json]
    flask --app wsgi audit verifier --out FILE [--json]

Both join the ``audit`` group next to ``audit verify`` (console.cli). Exit 2 when export is not
configured or the window cannot be exported (click's usage/configuration convention).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from console import cli_types
from console.audit.export import ExportRefused, ExportWindow, export_log
from console.audit.export_format import (
    EVENT_FORMATS,
    JSONL,
    key_fingerprint,
    public_key_file_text,
    public_key_pem,
)
from console.audit.settings import KEY_VARIABLE
from console.audit.standalone import FILENAME, StandaloneError, build
from console.cli import cli_actor, emit, json_option
from console.unit_of_work import database


class Refused(click.ClickException):
    exit_code = 2


def _day(_ctx, param, value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise click.BadParameter("must be a date like 2026-11-27", param=param) from None


def _audit_settings():
    return current_app.extensions["settings"].audit


@click.command("export", help="Write a signed export of the audit log for auditors: the events "
               "with since <= time < until (UTC days; omit either for an open end).")
@click.option("--since", callback=_day, metavar="YYYY-MM-DD", help="First day, included.")
@click.option("--until", callback=_day, metavar="YYYY-MM-DD", help="Day after the last, excluded.")
@click.option("--out", required=True,
              type=cli_types.Path(dir_okay=False, path_type=Path, output=True),
              help="The zip to write (replaced only once the export is complete and audited).")
@click.option("--format", "events_format", type=click.Choice(EVENT_FORMATS), default=JSONL,
              show_default=True, help="csv adds events.csv (for spreadsheets) beside the "
                                      "chain-carrying events.jsonl.")
@json_option
@with_appcontext
def export_command(since: dt.datetime | None, until: dt.datetime | None, out: Path,
                   events_format: str, as_json: bool):
    audit = _audit_settings()
    # Written beside the target and renamed after the commit: no partial or unaudited file.
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial",
                                       dir=out.parent)
    except OSError as error:
        raise Refused(f"cannot write {out} ({error.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as target, database().transaction() as session:
            result = export_log(session, actor=cli_actor(),
                                signing_key=audit.export_signing_key,
                                window=ExportWindow(since, until),
                                max_rows=audit.export_max_rows,
                                events_format=events_format)
            with result.file:
                while chunk := result.file.read(1024 * 1024):
                    target.write(chunk)
        os.replace(partial, out)
    except ExportRefused as refused:
        raise Refused(str(refused)) from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    manifest = result.manifest
    emit(as_json, {"file": str(out), "file_sha256": result.file_sha256, "size": result.size,
                   **manifest},
         f"exported {manifest['count']:,} events (#{manifest['first_seq']} to "
         f"#{manifest['last_seq']}) to {out}\n"
         f"  file sha256 {result.file_sha256}\n"
         f"  signed by   {manifest['key_id']}\n"
         f"verify: python -m console.audit.offline {out} --public-key PUBLIC.pem "
         "(PUBLIC.pem from `flask --app wsgi audit public-key`)")


@click.command("public-key", help="Print the export signing key's public half (PEM) and its "
               "fingerprint, to hand to auditors.")
@json_option
@with_appcontext
def public_key_command(as_json: bool):
    key = _audit_settings().export_signing_key
    if key is None:
        raise Refused(f"audit export is not configured: set {KEY_VARIABLE} (or "
                      f"{KEY_VARIABLE}_FILE)")
    public_key = key.public_key()
    # The same text as the audit page's download, so the output can be saved as the key file.
    emit(as_json, {"public_key_pem": public_key_pem(public_key),
                   "key_id": key_fingerprint(public_key)},
         public_key_file_text(public_key).rstrip("\n"))


@click.command("verifier", help="Write the one-file offline verifier for auditors who have "
               f"Python and cryptography but not the console (python3 {FILENAME} EXPORT.zip "
               "--public-key PUBLIC.pem).")
@click.option("--out", required=True,
              type=cli_types.Path(dir_okay=False, path_type=Path, output=True),
              help="The .py file to write (replaced only once complete).")
@json_option
def verifier_command(out: Path, as_json: bool):
    try:
        verifier = build()
    except StandaloneError as error:
        raise Refused(str(error)) from None
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial",
                                       dir=out.parent)
    except OSError as error:
        raise Refused(f"cannot write {out} ({error.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as target:
            target.write(verifier.text)
        os.replace(partial, out)
    except OSError as error:
        os.unlink(partial)
        raise Refused(f"cannot write {out} ({error.strerror})") from None
    emit(as_json, {"file": str(out), "sha256": verifier.sha256, "modules": verifier.modules,
                   "version": verifier.version},
         f"wrote the offline verifier to {out}\n"
         f"  sha256 {verifier.sha256}\n"
         f"run: python3 {out} EXPORT.zip --public-key PUBLIC.pem (Python 3.11+, cryptography)")
