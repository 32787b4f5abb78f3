"""``simulate`` commands: run a scenario against a console, or serve only the Card API.

Usable two ways with the same options: ``flask --app wsgi simulate <scenario> ...`` (registered
in ``console/cli.py``) and ``python -m console.simulator <scenario> ...``, which needs none of
the console's settings, so the demo runner can start it as a separate process. Secrets can come
from the environment (``FINCI_SIM_WEBHOOK_SECRET``, ``FINCI_SIM_CARD_API_TOKEN``,
``FINCI_SIM_CARD_API_SECRET``) instead of the command line, where ``ps`` would show them.

Exit codes: 0 the run completed and the console behaved; 1 the report lists problems (a 4xx to
a FINCI message, a bad request accepted, mismatched duplicate answers, ...); 2 usage error.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import string
import sys
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import click

from console import cli_types
from console.finci import contract
from console.finci.webhook_signature import InvalidWebhookSecret, WebhookSecret
from console.simulator.card_api_server import CardApiServer, Faults
from console.simulator.cards import CardBook
from console.simulator.report import render_table
from console.simulator.runner import run_scenario
from console.simulator.scenarios import SCENARIOS, active_cards, run_book, validate_run_id
from console.simulator.sender import RetryPolicy

_RATE = click.FloatRange(0.0, 1.0)
_FILE = cli_types.Path(exists=True, dir_okay=False)


def _fresh_run_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))


def _value_or_file(name: str, value: str | None, path: str | None, *, required: bool = True
                   ) -> str | None:
    """A secret given directly or as a file (the first whitespace-separated item in it)."""
    if value is not None and path is not None:
        raise click.UsageError(f"give --{name} or --{name}-file, not both")
    if path is not None:
        items = Path(path).read_text(encoding="utf-8").split()
        if not items:
            raise click.UsageError(f"--{name}-file is empty")
        # A console's secret file may list two secrets during rotation; FINCI signs with one.
        return items[0]
    if value is None and required:
        raise click.UsageError(f"--{name} or --{name}-file is required")
    return value


def _webhook_secret(value: str) -> WebhookSecret:
    try:
        return WebhookSecret.parse(value)
    except InvalidWebhookSecret as exc:
        raise click.BadParameter(str(exc), param_hint="--secret") from None


def _run_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    if value is None:
        return _fresh_run_id()
    try:
        return validate_run_id(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _emit(as_json: bool, payload: dict[str, Any], human: str) -> None:
    click.echo(json.dumps(payload, sort_keys=True) if as_json else human)


def _card_api_params() -> list[click.Parameter]:
    return [
        click.Option(["--card-api-port"], type=click.IntRange(0, 65535),
                     help="Also serve the Card API on 127.0.0.1:PORT during the run "
                          "(0: any free port), sharing the run's card book."),
        click.Option(["--card-api-token"], envvar="FINCI_SIM_CARD_API_TOKEN",
                     help="API token the Card API expects (env FINCI_SIM_CARD_API_TOKEN)."),
        click.Option(["--card-api-token-file"], type=_FILE, help="File holding that token."),
        click.Option(["--card-api-secret"], envvar="FINCI_SIM_CARD_API_SECRET",
                     help="API secret for X-Auth-Signature (env FINCI_SIM_CARD_API_SECRET)."),
        click.Option(["--card-api-secret-file"], type=_FILE, help="File holding that secret."),
        click.Option(["--card-api-error-rate"], type=_RATE, default=0.0, show_default=True,
                     help="Share of Card API calls answered 503."),
        click.Option(["--card-api-timeout-rate"], type=_RATE, default=0.0, show_default=True,
                     help="Share of Card API calls that stall past the client's timeout."),
        click.Option(["--card-api-latency-ms"], type=click.FloatRange(0), default=0.0,
                     show_default=True, help="Extra latency on every Card API call, up to this."),
    ]


def _faults(error_rate: float, timeout_rate: float, latency_ms: float) -> Faults:
    try:
        return Faults(error_rate=error_rate, timeout_rate=timeout_rate,
                      latency_s=(0.0, latency_ms / 1000))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@click.group("simulate", help="FINCI simulator: signed webhooks to a console, and the Card API.")
def simulate_group() -> None:
    pass


@simulate_group.command("list", help="List the scenarios.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_scenarios(as_json: bool) -> None:
    payload = {name: spec.summary for name, spec in SCENARIOS.items()}
    width = max(map(len, payload))
    _emit(as_json, payload, "\n".join(f"{n.ljust(width)}  {s}" for n, s in payload.items()))


@simulate_group.command("cards", help="Show the card book a run with this seed uses (masked).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--cards", type=click.IntRange(1, 10_000), default=SCENARIOS["steady"].cards,
              show_default=True, help="As --cards of the run: how many cards get scripts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show_cards(seed: int, cards: int, as_json: bool) -> None:
    book = run_book(seed, cards)
    scripted = {card.token_id for card in active_cards(book, cards)}
    rows = [{**asdict(card), "scripted": card.token_id in scripted} for card in book.cards()]
    human = "\n".join(
        f"{r['token_id']}  {r['card_number']}  {r['token_status']:<11}  {r['currency']}  "
        + (f"person {r['person_id']}" if r["person_id"] else f"corporate {r['corporate_id']}")
        + ("  *" if r["scripted"] else "")
        for r in rows
    ) + "\n(* gets scripts in a run with these options)"
    _emit(as_json, {"seed": seed, "cards": rows}, human)


def _scenario_command(name: str) -> click.Command:
    spec = SCENARIOS[name]

    @click.pass_context
    def command(ctx: click.Context, **options: Any) -> None:
        _run(ctx, name, **options)

    params: list[click.Parameter] = [
        click.Option(["--console-url"], envvar="FINCI_SIM_CONSOLE_URL", required=True,
                     help="The console's base URL; webhooks go to {URL}/webhooks/finci."),
        click.Option(["--secret"], envvar="FINCI_SIM_WEBHOOK_SECRET",
                     help="Webhook signing secret, whsec_... (env FINCI_SIM_WEBHOOK_SECRET)."),
        click.Option(["--secret-file"], envvar="FINCI_SIM_WEBHOOK_SECRET_FILE", type=_FILE,
                     help="File holding the webhook secret (the first, if it lists several)."),
        click.Option(["--seed"], type=int, default=1, show_default=True,
                     help="Same seed, same cards and scripts."),
        click.Option(["--run-id"], callback=_run_id,
                     help="Namespace for message ids (default: random); with the seed, "
                          "reproduces a run's ids exactly."),
        click.Option(["--cards"], type=click.IntRange(1, 10_000),
                     help=f"Cards with a script (default {spec.cards})."),
        click.Option(["--rate"], type=click.FloatRange(0, min_open=True),
                     help="At most this many new messages per second."),
        click.Option(["--duration"], type=click.FloatRange(0, min_open=True),
                     help="Stop after this many seconds"
                          + (" (default: until interrupted)." if spec.endless else ".")),
        click.Option(["--concurrency"], type=click.IntRange(1, 512),
                     help=f"Cards in flight at once (default {spec.concurrency})."),
        click.Option(["--burst/--no-burst"], default=None,
                     help="Start every card's script at the same instant"
                          + (" (default on)." if spec.burst else ".")),
        click.Option(["--deadline"], type=click.FloatRange(0, min_open=True),
                     default=float(contract.AUTHORIZATION_ANSWER_DEADLINE_SECONDS),
                     show_default=True,
                     help="FINCI's answer deadline in seconds. Keep 3 to test the console; "
                          "other values are what-ifs."),
        click.Option(["--duplicate-rate"], type=_RATE, help="Share of messages delivered twice+."),
        click.Option(["--race-rate"], type=_RATE,
                     help="Share of duplicated messages whose copies race the original."),
        click.Option(["--out-of-order-rate"], type=_RATE,
                     help="Share of messages delivered after the card's next one."),
        click.Option(["--delay-rate"], type=_RATE, help="Share of messages delivered late."),
        click.Option(["--max-delay"], type=click.FloatRange(0), help="Longest delay, seconds."),
        click.Option(["--malformed-rate"], type=_RATE,
                     help="Share of scripts followed by a bad (4xx-worthy) request."),
        click.Option(["--max-attempts"], type=click.IntRange(1, 50), default=6, show_default=True,
                     help="FINCI gives up on a message after this many deliveries."),
        click.Option(["--retry-base"], type=click.FloatRange(0), default=1.0, show_default=True,
                     help="First retry backoff in seconds (doubles each time)."),
        click.Option(["--ca-file"], type=cli_types.Path(exists=True, dir_okay=False),
                     help="CA bundle to verify the console's TLS certificate."),
        *_card_api_params(),
        click.Option(["--json", "as_json"], is_flag=True, help="Print the summary as JSON."),
    ]
    return click.command(name, help=f"{spec.summary}.", params=params)(command)


def _delivery_overrides(spec_delivery: Any, options: dict[str, Any]) -> Any:
    names = {"duplicate_rate": "duplicate_rate", "race_rate": "race_rate",
             "out_of_order_rate": "out_of_order_rate", "delay_rate": "delay_rate",
             "max_delay": "max_delay_s"}
    changes = {field: options[key] for key, field in names.items() if options[key] is not None}
    return replace(spec_delivery, **changes) if changes else None


def _run(ctx: click.Context, name: str, **o: Any) -> None:
    spec = SCENARIOS[name]
    secret = _webhook_secret(_value_or_file("secret", o["secret"], o["secret_file"]))
    count = o["cards"] if o["cards"] is not None else spec.cards
    book = run_book(o["seed"], count)
    stop = threading.Event()
    server = None
    if o["card_api_port"] is not None:
        token = _value_or_file("card-api-token", o["card_api_token"], o["card_api_token_file"])
        api_secret = _value_or_file("card-api-secret", o["card_api_secret"],
                                    o["card_api_secret_file"])
        server = CardApiServer(
            book, token, api_secret, port=o["card_api_port"],
            faults=_faults(o["card_api_error_rate"], o["card_api_timeout_rate"],
                           o["card_api_latency_ms"]), seed=o["seed"],
        ).start()
        click.echo(f"card api on {server.url}", err=True)
    try:
        report = run_scenario(
            name, o["console_url"], secret,
            seed=o["seed"], run_id=o["run_id"], book=book, cards=count,
            delivery=_delivery_overrides(spec.delivery, o),
            malformed_rate=o["malformed_rate"], concurrency=o["concurrency"], burst=o["burst"],
            rate=o["rate"], duration_s=o["duration"], deadline_s=o["deadline"],
            retry=RetryPolicy(max_attempts=o["max_attempts"], base_s=o["retry_base"]),
            verify=o["ca_file"] or True, stop=stop,
        )
    except KeyboardInterrupt:
        raise click.Abort() from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        if server is not None:
            server.stop()
    summary = report.summary()
    _emit(o["as_json"], summary, render_table(summary))
    ctx.exit(1 if summary["problems"] else 0)


for _name in SCENARIOS:
    simulate_group.add_command(_scenario_command(_name))


@simulate_group.command("serve-card-api", help="Serve only FINCI's Card API until interrupted.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: any free port, printed at start).")
@click.option("--token", envvar="FINCI_SIM_CARD_API_TOKEN",
              help="API token expected in X-Auth-Token (env FINCI_SIM_CARD_API_TOKEN).")
@click.option("--token-file", type=_FILE, help="File holding the API token.")
@click.option("--secret", envvar="FINCI_SIM_CARD_API_SECRET",
              help="API secret for X-Auth-Signature (env FINCI_SIM_CARD_API_SECRET).")
@click.option("--secret-file", type=_FILE, help="File holding the API secret.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seeds the card book.")
@click.option("--cards", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--error-rate", type=_RATE, default=0.0, show_default=True,
              help="Share of calls answered 503.")
@click.option("--timeout-rate", type=_RATE, default=0.0, show_default=True,
              help="Share of calls that stall past the client's timeout (after the change).")
@click.option("--latency-ms", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Extra latency on every call, up to this.")
@click.option("--json", "as_json", is_flag=True, help="Print the start line as JSON.")
def serve_card_api(port: int, token: str | None, token_file: str | None, secret: str | None,
                   secret_file: str | None, seed: int, cards: int, error_rate: float,
                   timeout_rate: float, latency_ms: float, as_json: bool) -> None:
    token = _value_or_file("token", token, token_file)
    secret = _value_or_file("secret", secret, secret_file)
    book = CardBook.seeded(seed, cards)
    server = CardApiServer(book, token, secret, port=port, seed=seed,
                           faults=_faults(error_rate, timeout_rate, latency_ms))
    owners = sorted({c.person_id for c in book.cards() if c.person_id})
    _emit(as_json, {"url": server.url, "cards": len(book), "example_person_id": owners[0]},
          f"FINCI Card API simulator on {server.url} ({len(book)} cards; "
          f"e.g. person_id {owners[0]}); Ctrl-C to stop")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def _terminate(*_args: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """``python -m console.simulator``: the same commands without the console's settings.

    SIGTERM (how the demo runner stops its children) ends a run like Ctrl-C: the workers wind
    down and the summary is printed.
    """
    signal.signal(signal.SIGTERM, _terminate)
    simulate_group.main(prog_name="python -m console.simulator")
