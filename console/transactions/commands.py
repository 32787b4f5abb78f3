"""``flask --app wsgi trace <identifier> [--json]``: the transaction timeline for scripts.

The same service functions as the page (``timeline.find`` and ``timeline.build``), so what a
script sees is what an operator sees. Exit codes: 0 found, 1 nothing or several found (the
candidates are listed), 2 usage.
"""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from console import cli_types
from console.transactions import timeline
from console.unit_of_work import database


def _emit(as_json: bool, payload: dict, human: str) -> None:
    from console.cli import emit

    emit(as_json, payload, human)


def _human(built: timeline.Timeline) -> str:
    facts = built.facts()
    lines = [f"{facts['authorization_id'] or facts['link_key']}  state={facts['state']}  "
             f"card={facts['card'] or facts['token_id']}  "
             f"authorized={timeline.money(facts['authorized'], facts['currency'])}  "
             f"cleared={timeline.money(facts['cleared'], facts['currency'])}  "
             f"reversed={timeline.money(facts['reversed'], facts['currency'])}  "
             f"refunded={timeline.money(facts['refunded'], facts['currency'])}"]
    for number, event in enumerate(built.events, 1):
        latency = f"+{event.latency_ms:.0f}ms" if event.latency_ms is not None else ""
        lines.append(f"{number:>3}. {event.at.isoformat(timespec='milliseconds')} {latency:>10} "
                     f"{event.lane:<8} {event.title}" + (f" - {event.detail}"
                                                          if event.detail else ""))
    return "\n".join(lines)


@click.command("trace", help="Print one transaction's end-to-end timeline, found by any "
                             "identifier: authorization id, message id or webhook-id, token id, "
                             "masked card number (narrow with --amount and --date).")
@click.argument("identifier", required=False, default="")
@click.option("--amount", help="Amount in major units, e.g. 12.50.")
@click.option("--date", "day", help="A date (UTC) one of its messages was created, YYYY-MM-DD.")
@click.option("--transaction", "transaction_id", type=cli_types.RECORD_ID,
              help="The console's transaction id.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@with_appcontext
def trace_command(identifier: str, amount: str | None, day: str | None,
                  transaction_id: int | None, as_json: bool):
    try:
        query = timeline.parse_query(identifier, amount, day)
    except timeline.QueryInvalid as invalid:
        raise click.UsageError(str(invalid)) from None
    if query.empty and transaction_id is None:
        raise click.UsageError("give an identifier, --amount/--date, or --transaction")
    with database().transaction() as session:
        if transaction_id is not None:
            ids = [transaction_id]
        else:
            ids = [t.id for t in timeline.find(session, query, limit=20)]
        if len(ids) != 1:
            candidates = [{"id": t.id, "link_key": t.link_key, "state": t.state,
                           "last_event_at": t.last_event_at.isoformat()}
                          for t in (session.get(timeline.CardTransaction, i) for i in ids)]
            _emit(as_json, {"error": "no transaction matches" if not ids else
                            f"{len(ids)} transactions match", "candidates": candidates},
                  "no transaction matches" if not ids else
                  f"{len(ids)} transactions match; use --transaction with one of:\n"
                  + "\n".join(f"  {c['id']}  {c['link_key']}  {c['state']}" for c in candidates))
            sys.exit(1)
        built = timeline.build(session, ids[0])
        if built is None:
            _emit(as_json, {"error": "no transaction matches", "candidates": []},
                  "no transaction matches")
            sys.exit(1)
        payload, human = built.as_dict(), _human(built)
    _emit(as_json, payload, human)
