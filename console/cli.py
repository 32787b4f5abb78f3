"""`flask --app wsgi ...` commands: thin wrappers over services, each with ``--json`` output.

Exit codes: 0 success, 1 the operation found a problem (e.g. a broken audit chain), 2 usage or
configuration error (click's convention).
"""

from __future__ import annotations

import copy
import json
import os
import pwd
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from console import cli_types, migrate
from console.audit.actions import AuditAction, Outcome
from console.audit.services import Actor, record
from console.deployment import EnvironmentMismatch, record_environment, recorded_environment
from console.unit_of_work import database


def os_user() -> str:
    """The account this process runs as, from its user id. Not ``getpass.getuser()``: that
    believes $LOGNAME and $USER first, so ``USER=bob flask ... approve`` made anyone "bob" and
    a four-eyes approval from a shell proved nothing."""
    return pwd.getpwuid(os.geteuid()).pw_name


def cli_actor() -> Actor:
    """The OS user as actor. Deciding a four-eyes request also needs a console account of the
    same name holding the permission (console.four_eyes.check_decider)."""
    return Actor.cli(os_user())


def emit(as_json: bool, payload: dict, human: str) -> None:
    click.echo(json.dumps(payload, default=str, sort_keys=True) if as_json else human)


def settings():
    return current_app.extensions["settings"]


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group("db", cls=AppGroup, help="Database schema: migrations and the environment stamp.")
def db_group():
    pass


@db_group.command("upgrade", help="Apply migrations and stamp a new database's environment.")
@click.option("--revision", default="head", show_default=True)
@json_option
def db_upgrade(revision: str, as_json: bool):
    engine = database().engine
    environment = settings().environment.value
    # Refuse before touching the schema if this database belongs to the other environment.
    with database().transaction() as session:
        try:
            current = recorded_environment(session)
        except Exception:  # a brand-new database has no deployment table yet
            current = None
    if current not in (None, environment):
        raise click.ClickException(
            f"this database belongs to {current}; CONSOLE_ENVIRONMENT is {environment}")
    migrate.upgrade(engine, revision)
    stamped = False
    if revision == "head":
        with database().transaction() as session:
            try:
                stamped = record_environment(session, environment, cli_actor())
            except EnvironmentMismatch as exc:
                raise click.ClickException(str(exc)) from None
    with engine.connect() as connection:
        now = migrate.current_revision(connection)
    emit(as_json, {"revision": now, "environment": environment, "stamped": stamped},
         f"database at {now} ({environment}{', newly stamped' if stamped else ''})")


@db_group.command("downgrade", help="Revert migrations to REVISION (e.g. base).")
@click.argument("revision")
@click.confirmation_option(prompt="Downgrading can drop data. Continue?")
def db_downgrade(revision: str):
    migrate.downgrade(database().engine, revision)
    click.echo(f"database downgraded to {revision}")


@db_group.command("current", help="Show the database's and the code's migration revision.")
@json_option
def db_current(as_json: bool):
    with database().engine.connect() as connection:
        current = migrate.current_revision(connection)
    head = migrate.head_revision()
    emit(as_json, {"current": current, "head": head, "up_to_date": current == head},
         f"database: {current or 'empty'}; code: {head}"
         + ("" if current == head else "  (run `flask --app wsgi db upgrade`)"))


@click.group("audit", cls=AppGroup, help="The tamper-evident audit log.")
def audit_group():
    pass


@audit_group.command("verify", help="Walk the hash chain and check every signed checkpoint; "
                     "name the first problem.")
@click.option("--public-key", "public_key_file", type=cli_types.Path(dir_okay=False),
              help="Check checkpoints with this PEM public key (default: the configured "
                   "AUDIT_EXPORT_SIGNING_KEY's).")
@click.option("--checkpoint-dir", "checkpoint_dir", type=cli_types.Path(file_okay=False),
              help="Also check the checkpoint files kept in this directory (default: "
                   "AUDIT_CHECKPOINT_DIR, when set).")
@json_option
def audit_verify(as_json: bool, public_key_file: str | None, checkpoint_dir: str | None):
    from console.audit.checkpoints import describe, verify_log
    from console.audit.export_format import MalformedExport
    from console.audit.offline import load_public_key

    if public_key_file is not None:
        try:
            public_key = load_public_key(public_key_file)
        except MalformedExport as error:
            raise click.BadParameter(str(error), param_hint="--public-key") from None
    else:
        signing_key = settings().audit.export_signing_key
        public_key = signing_key.public_key() if signing_key is not None else None
    with database().transaction() as session:
        result = verify_log(session, public_key,
                            checkpoint_dir=checkpoint_dir or settings().audit.checkpoint_dir,
                            archive_dir=settings().audit.archive_dir)
        record(session, actor=cli_actor(), action=AuditAction.AUDIT_CHAIN_VERIFY,
               outcome=Outcome.SUCCESS if result["ok"] else Outcome.FAILURE, details=result)
    emit(as_json, result, describe(result))
    if not result["ok"]:
        sys.exit(1)


@audit_group.command("archive", help="Archive audit rows older than AUDIT_RETENTION_MONTHS "
                     "to a signed bundle in AUDIT_ARCHIVE_DIR, verify it, then remove them.")
@json_option
def audit_archive(as_json: bool):
    from console.audit.retention import RetentionRefused, archive_due

    try:
        with database().transaction() as session:
            run = archive_due(session, cli_actor(), settings().audit)
    except RetentionRefused as refused:
        emit(as_json, {"summary": None, "archive": None, "refused": str(refused)},
             f"retention stopped, nothing removed: {refused}")
        sys.exit(1)
    emit(as_json, run.as_dict(), run.summary)


def register_commands(app: Flask) -> None:
    app.cli.add_command(db_group)
    from console.audit.commands import export_command, public_key_command, verifier_command

    audit_group.add_command(export_command)
    audit_group.add_command(public_key_command)
    audit_group.add_command(verifier_command)
    app.cli.add_command(audit_group)
    from console.auth.commands import auth_group

    app.cli.add_command(auth_group)
    from console.scheduler.commands import scheduler_group

    app.cli.add_command(scheduler_group)
    from console.demo_seed import demo_group

    app.cli.add_command(demo_group)
    from console.simulator.commands import simulate_group

    app.cli.add_command(simulate_group)
    from console.evidence.commands import evidence_group

    app.cli.add_command(evidence_group)
    from console.pipeline.commands import pipeline_group, replay_group, worker_command

    app.cli.add_command(worker_command)
    app.cli.add_command(replay_group)
    app.cli.add_command(pipeline_group)
    from console.flows.commands import flows_group

    app.cli.add_command(flows_group)
    from console.transactions.commands import trace_command

    app.cli.add_command(trace_command)
    from console.cards.commands import cards_group

    app.cli.add_command(cards_group)
    from console.checks.commands import checks_group

    app.cli.add_command(checks_group)
    from console.keys.card_data_commands import card_data_group
    from console.keys.commands import keys_group

    keys_group.add_command(card_data_group)
    app.cli.add_command(keys_group)
    cli_types.harden(app.cli)


class NotConfigured(click.ClickException):
    """A command run without valid configuration (exit 2, the usage/configuration code)."""

    exit_code = 2


def _refusing(command: click.Command, problem: str) -> click.Command:
    """A copy of ``command`` (and of its subcommands) that describes itself as usual but stops
    with ``problem`` when run. Copies, so the shared command objects stay untouched."""
    clone = copy.copy(command)
    if isinstance(command, click.Group):
        clone.commands = {name: _refusing(sub, problem) for name, sub in command.commands.items()}

        def group_callback(*_args, **_kwargs):
            # A group's callback runs before its subcommand is parsed: refuse only when the
            # group itself is the command (``scheduler``), so ``scheduler jobs --help`` works.
            if click.get_current_context().invoked_subcommand is None:
                raise NotConfigured(problem)

        clone.callback = group_callback
    else:
        def callback(*_args, **_kwargs):
            raise NotConfigured(problem)

        clone.callback = callback
    return clone


def commands_only_app(problem: str) -> Flask:
    """The app the Flask CLI gets when the configuration is invalid: it lists every command and
    answers ``--help`` at any level, and every command stops with ``problem`` (exit 2). It has
    no blueprints, so nothing can be served from it."""
    app = Flask("console")
    register_commands(app)
    app.cli.commands = {name: _refusing(command, problem)
                        for name, command in app.cli.commands.items()}
    return app
