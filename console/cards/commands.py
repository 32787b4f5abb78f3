"""``flask --app wsgi cards refresh|send-actions|link-account``: thin wrappers over the services
the scheduler runs, for operators and scripts (each takes ``--json``; exit 1 on failures)."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from console.unit_of_work import database

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _emit(as_json: bool, payload: dict, human: str) -> None:
    from console.cli import emit

    emit(as_json, payload, human)


def _actor():
    from console.cli import cli_actor

    return cli_actor()


def _lifecycle():
    return current_app.extensions["settings"].lifecycle


@click.group("cards", cls=AppGroup, help="The local card view and card actions (FINCI Card API).")
def cards_group():
    pass


@cards_group.command("refresh", help="Refresh the local card view from FINCI's get-cards now.")
@json_option
def refresh_command(as_json: bool):
    from console.cards.actions import ActionRefused, card_api_client
    from console.cards.refresh import refresh_cards

    try:
        client = card_api_client(_lifecycle())
    except ActionRefused as refused:
        raise click.ClickException(str(refused)) from None
    with client:
        report = refresh_cards(database().transaction, client, _lifecycle(), _actor())
    _emit(as_json, report.as_dict(), report.summary)
    if report.failed_owners:
        sys.exit(1)


@cards_group.command("send-actions", help="Send card status changes that are due now.")
@json_option
def send_command(as_json: bool):
    from console.cards.actions import ActionRefused, card_api_client, send_due

    settings = _lifecycle()
    try:
        card_api_client(settings).close()
    except ActionRefused as refused:
        raise click.ClickException(str(refused)) from None
    report = send_due(database().transaction, lambda: card_api_client(settings), settings,
                      _actor())
    _emit(as_json, {"sent": report.sent, "retrying": report.retrying, "failed": report.failed,
                    "refused": report.refused, "paused": report.paused}, report.summary)
    if report.failed or report.refused:
        sys.exit(1)


@cards_group.command("link-account", help="Link a card to the ledger account it spends from "
                                          "(audited; repairs unknown_account postings).")
@click.argument("token_id")
@click.argument("account_id", type=int)
@json_option
def link_command(token_id: str, account_id: int, as_json: bool):
    from console.cards.services import link_account

    with database().transaction() as session:
        try:
            card = link_account(session, _actor(), token_id, account_id)
        except LookupError as missing:
            raise click.ClickException(f"not found: {missing}") from None
        payload = {"token_id": card.token_id, "account_id": card.account_id}
    _emit(as_json, payload, f"card {token_id} now spends from account {account_id}")
