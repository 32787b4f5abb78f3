"""``flask --app wsgi keys card-data generate|activate|list|retire|revoke [--json]``.

The same services as the page, audited with the OS user as actor; for on-call to revoke a key
from a shell when the console is unreachable. With KEY_ACTIONS_REQUIRE_SECOND_APPROVER an action
is filed as a request (``keys approve ID`` by a second person). Refusals exit 1 with one line.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from console.keys import card_data_keys as keys
from console.secrets.store import SecretStoreError
from console.unit_of_work import database


@click.group("card-data", cls=AppGroup, help="Card-data key pairs FINCI encrypts card data to.")
def card_data_group():
    pass


def _environment() -> str:
    return current_app.extensions["settings"].environment.value


def _run(as_json: bool, action, human):
    from console.cli import cli_actor, emit

    try:
        with database().transaction() as session:
            result = action(session, cli_actor())
            payload = ([keys.as_dict(k) for k in result] if isinstance(result, list)
                       else keys.as_dict(result))
            text = human(result)
    except (keys.CardDataKeyError, SecretStoreError) as error:
        raise click.ClickException(str(error)) from None
    emit(as_json, {"keys": payload} if isinstance(result, list) else payload, text)


_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
_reason = click.option("--reason", required=True, help="Why (recorded in the audit log).")


def _perform(as_json: bool, action, human, *, reason: str | None = None, **params):
    """Through console.keys.approvals: done at once, or filed for a second person."""
    from console.cli import cli_actor, emit
    from console.keys.approvals import KeyActionRefused, KeyContext, perform
    from console.keys.commands import request_dict

    try:
        with database().transaction() as session:
            done = perform(session, cli_actor(), KeyContext.of(current_app), action,
                           reason=reason or "", **params)
            if done.request is not None:
                payload = request_dict(done.request)
                text = (f"request #{done.request.id} filed: {done.request.summary} needs a "
                        f"second person's approval (`keys approve {done.request.id}`)")
            else:
                payload, text = keys.as_dict(done.result), human(done.result)
    except (keys.CardDataKeyError, SecretStoreError, KeyActionRefused) as error:
        raise click.ClickException(str(error)) from None
    emit(as_json, payload, text)


_optional_reason = click.option("--reason", default=None,
                                help="Why (required where a second approver is).")


@card_data_group.command("generate", help="Generate an RSA key pair (pending) and print its "
                                          "public key (SPKI PEM) for FINCI.")
@click.option("--bits", type=int, default=3072, show_default=True)
@_optional_reason
@_json
def generate_command(bits: int, reason: str | None, as_json: bool):
    from console.keys.approvals import KeyAction

    _perform(as_json, KeyAction.CARD_DATA_GENERATE,
             lambda k: f"generated {k.kid} (pending), fingerprint {k.fingerprint}\n{k.public_pem}",
             reason=reason, bits=bits)


@card_data_group.command("list", help="Card-data keys of this environment.")
@_json
def list_command(as_json: bool):
    _run(as_json, lambda s, actor: keys.list_keys(s, _environment()),
         lambda ks: "\n".join(f"{k.kid}  {k.status:8}  {k.fingerprint}" for k in ks)
         or "no card-data key")


@card_data_group.command("activate", help="Start decrypting with a pending key.")
@click.argument("kid")
@_optional_reason
@_json
def activate_command(kid: str, reason: str | None, as_json: bool):
    from console.keys.approvals import KeyAction

    _perform(as_json, KeyAction.CARD_DATA_ACTIVATE, lambda k: f"{k.kid} is active",
             reason=reason, kid=kid)


@card_data_group.command("retire", help="Stop decrypting with a key.")
@click.argument("kid")
@_reason
@_json
def retire_command(kid: str, reason: str, as_json: bool):
    from console.keys.approvals import KeyAction

    _perform(as_json, KeyAction.CARD_DATA_RETIRE, lambda k: f"{k.kid} is retired",
             reason=reason, kid=kid)


@card_data_group.command("revoke", help="Refuse a key and destroy its private key now.")
@click.argument("kid")
@_reason
@_json
def revoke_command(kid: str, reason: str, as_json: bool):
    from console.keys.approvals import KeyAction

    _perform(as_json, KeyAction.CARD_DATA_REVOKE,
             lambda k: f"{k.kid} is revoked; its private key is deleted", reason=reason,
             kid=kid)
