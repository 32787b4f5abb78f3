"""`flask --app wsgi auth ...`: break-glass accounts and session housekeeping.

    flask --app wsgi auth break-glass create NAME --role oncall [--password-stdin] [--json]
    flask --app wsgi auth break-glass unlock NAME [--json]
    flask --app wsgi auth purge-sessions [--json]
"""

from __future__ import annotations

import datetime as dt
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from console.auth import break_glass
from console.auth.sessions import SessionLimits, purge_expired
from console.cli import cli_actor, emit, json_option
from console.db import utcnow
from console.security.permissions import Role
from console.unit_of_work import database

# AppGroup: its commands run inside the app context whoever invokes them (CLI or test runner).
auth_group = AppGroup("auth", help="Identity and access: break-glass accounts, sessions.")


@auth_group.group("break-glass", help="Local emergency accounts (used only if the IdP is down).")
def break_glass_group():
    pass


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password (at least 16 characters)", hide_input=True,
                        confirmation_prompt=True)


@break_glass_group.command("create", help="Create an account; prints its TOTP enrolment URI once.")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice([r.value for r in Role]), help="Role(s) the account holds.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@json_option
def create(name: str, roles: tuple[str, ...], password_stdin: bool, as_json: bool):
    settings = current_app.extensions["settings"]
    password = _password(password_stdin)
    try:
        with database().transaction() as session:
            created = break_glass.create_account(
                session, name, password, [Role(r) for r in roles], actor=cli_actor(),
                secret_key=settings.secret_key, at=utcnow())
            username, role_names = created.user.username, created.user.role_names
    except break_glass.BreakGlassError as error:
        raise click.UsageError(str(error)) from None
    warning = None if settings.auth.break_glass_enabled else (
        "BREAK_GLASS_ENABLED is false: the account cannot sign in until it is enabled")
    human = "\n".join(filter(None, [
        f"created {username} with role(s) {', '.join(role_names)}",
        "Enrol this URI in an authenticator app now; it is not shown again:",
        created.provisioning_uri,
        f"warning: {warning}" if warning else None,
    ]))
    emit(as_json, {"username": username, "roles": role_names,
                   "totp_provisioning_uri": created.provisioning_uri,
                   "break_glass_enabled": settings.auth.break_glass_enabled}, human)


@break_glass_group.command("unlock", help="Clear a lockout after 10 failed sign-ins.")
@click.argument("name")
@json_option
def unlock(name: str, as_json: bool):
    with database().transaction() as session:
        found = break_glass.unlock(session, name, actor=cli_actor())
    if not found:
        raise click.UsageError(f"no break-glass account {name!r}")
    emit(as_json, {"username": f"break-glass:{name}", "unlocked": True},
         f"break-glass:{name} unlocked")


@auth_group.command("purge-sessions",
                    help="Delete expired sessions and break-glass attempts older than 90 days.")
@json_option
def purge_sessions(as_json: bool):
    limits = SessionLimits.from_settings(current_app.extensions["settings"].auth)
    now = utcnow()
    with database().transaction() as session:
        purged = purge_expired(session, at=now, limits=limits)
        # The audit log keeps every attempt; this table only needs recent ones for throttling.
        attempts = break_glass.purge_attempts(session, before=now - dt.timedelta(days=90))
    emit(as_json, {"purged": purged, "attempts_purged": attempts},
         f"{purged} expired session(s), {attempts} old sign-in attempt(s) deleted")
