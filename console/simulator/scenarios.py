"""Scenarios as data: per-card scripts of the messages FINCI would send, made from a seed.

A :class:`CardScript` is one card's story in order (authorize, clear, reverse, refund, change
status...). Generation is pure: the same cards, seed and ``run_id`` give the same scripts, so
property tests can draw scripts from :func:`card_script` and check the console against them.
How each message is delivered (duplicated, held back, delayed) is decided here too, as data on
each step (:class:`Delivery`), so a run is reproducible; :mod:`.sender` only carries it out.

Bodies follow ``finci-webhook.schema.json`` (FINCI.md B.3): integer minor units, ISO 4217
currency, UTC ISO-8601 ``created_at``. ``created_at`` is stamped when a message is about to be
delivered, since it is "when FINCI created the message" and the basis of delivery latency.

Two choices that FINCI's portal leaves open and the simulator had to make:

- A decline FINCI decides alone (card not active on its side) carries ``response_code``
  :data:`FINCI_OWN_DECLINE_CODE`, a code outside the two the portal names: the set is open,
  and the console must cope with codes it does not know.
- A timeout storm keeps FINCI's 3-second deadline. It makes the console slow honestly, with a
  burst of concurrent authorization requests, and the report says how many were answered in
  time (see :data:`SCENARIOS`). A shorter deadline exists only as a test and what-if knob.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from console.finci.contract import MessageType, ResponseCode, TokenStage, TokenStatus
from console.simulator.cards import CardBook, SimCard, random_token_id, seeded_random

FINCI_OWN_DECLINE_CODE: Final = "DoNotHonor"
_RUN_ID_RE: Final = re.compile(r"[a-z0-9]{1,16}")

# (name, MCC, country): fixed so bodies are reproducible; names are plainly fictional.
_MERCHANTS: Final = (
    ("Corner Coffee", "5814", "DE"),
    ("Metro Transit", "4111", "FR"),
    ("Book Nook", "5942", "NL"),
    ("Grocer & Co", "5411", "GB"),
    ("Online Games", "5816", "SE"),
)
# Merchants whose final amount differs from the authorized one (partial clearing is normal).
_ESTIMATING_MERCHANTS: Final = (("Fuel Stop", "5541", "DE"), ("Hotel Aurora", "7011", "ES"))
# Seen first at presentment (offline, e.g. in-flight purchases): no authorization before.
_OFFLINE_MERCHANT: Final = ("SkyHigh Airlines", "4511", "IE")


class StepKind(StrEnum):
    AUTHORIZATION = "authorization"  # request (FINCI waits for our answer), then FINCI's advice
    FINCI_ADVICE = "finci_advice"  # an advice FINCI decided alone: no request before it
    REVERSAL = "reversal"
    PRESENTMENT = "presentment"
    REFUND = "refund"
    CARD_STATUS = "card_status"


class Answer(StrEnum):
    """What the console answered an authorization request, as FINCI classifies it."""

    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"  # no answer within the deadline (or none at all)
    INVALID = "invalid"  # an answer, but not HTTP 200 with a valid status body


class BadKind(StrEnum):
    """Requests that are not FINCI's or not well formed: the console must answer 4xx."""

    # A kind name, not a secret.
    WRONG_SECRET = "wrong_secret"  # noqa: S105  # nosec B105
    STALE_TIMESTAMP = "stale_timestamp"
    MISSING_SIGNATURE = "missing_signature"
    TAMPERED_BODY = "tampered_body"
    NOT_JSON = "not_json"
    SCHEMA_INVALID = "schema_invalid"
    TOO_LARGE = "too_large"


@dataclass(frozen=True, slots=True)
class Delivery:
    """How FINCI's delivery misbehaves for one message (all off by default)."""

    copies: int = 1  # more than 1: duplicate deliveries, same webhook-id and same body
    race: bool = False  # the copies go concurrently with the original instead of after it
    delay_s: float = 0.0  # delivered this long after created_at (a late first attempt)
    hold: bool = False  # delivered after the card's next message: out of order


PLAIN: Final = Delivery()


@dataclass(frozen=True, slots=True)
class Step:
    """One message (or, for AUTHORIZATION, a request and its advice) in a card's script.

    ``body`` is the webhook body without ``created_at``; for AUTHORIZATION it is the request
    (``advice`` false, no ``response_code``) and the advice is derived from it at run time.
    """

    kind: StepKind
    body: Mapping[str, Any]
    webhook_id: str
    advice_webhook_id: str | None = None
    # Sent only if that authorization ended Approved: FINCI never clears a declined one.
    after_approval_of: str | None = None
    # The answer the console must give, where it is knowable from FINCI's side.
    expect: Answer | None = None
    delivery: Delivery = PLAIN
    advice_delivery: Delivery = PLAIN

    @property
    def message_id(self) -> str:
        return self.body["id"]


@dataclass(frozen=True, slots=True)
class CardScript:
    token_id: str
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class BadRequest:
    """One request the console must refuse; ``body`` is the valid body it is made from."""

    kind: BadKind
    body: Mapping[str, Any]
    webhook_id: str


WorkItem = CardScript | BadRequest


# --- rendering --------------------------------------------------------------------------------


def iso_utc(moment: datetime) -> str:
    """``2026-11-27T08:14:57.123Z``: UTC, millisecond precision, explicit zone."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def stamp(body: Mapping[str, Any], created_at: datetime, **changes: Any) -> dict[str, Any]:
    """``body`` with ``created_at`` set (and ``changes`` applied), keys in a readable order."""
    document = {"type": body["type"], "id": body["id"], "created_at": iso_utc(created_at)}
    document.update((k, v) for k, v in body.items() if k not in document)
    document.update(changes)
    return document


def message_body(step: Step, created_at: datetime) -> dict[str, Any]:
    """The body of a step's (first) message: for AUTHORIZATION, the request."""
    return stamp(step.body, created_at)


def advice_body(step: Step, response_code: str, created_at: datetime) -> dict[str, Any]:
    """FINCI's advice for an AUTHORIZATION step: same ``id``, ``advice`` true, the outcome."""
    if step.kind is not StepKind.AUTHORIZATION:
        raise ValueError("only authorization steps have an advice")
    return stamp(step.body, created_at, advice=True, response_code=response_code)


def encode(body: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed). Compact; no NaN; UTF-8."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def all_bodies(script: CardScript, created_at: datetime) -> Iterator[dict[str, Any]]:
    """Every body a script can produce, both advice outcomes included (for validation)."""
    for step in script.steps:
        yield message_body(step, created_at)
        if step.kind is StepKind.AUTHORIZATION:
            for code in (ResponseCode.APPROVED, ResponseCode.INSUFFICIENT_FUNDS):
                yield advice_body(step, code.value, created_at)


# --- ids --------------------------------------------------------------------------------------


class Ids:
    """Identifiers for one run: ``<prefix>_<run_id>_<n>``, deterministic in generation order.

    ``run_id`` keeps two runs with the same seed from colliding in the console's store; with
    the same seed and ``run_id`` the bodies are identical but for timestamps.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = validate_run_id(run_id)
        self._counters: dict[str, int] = {}

    def next(self, prefix: str) -> str:
        return f"{prefix}_{self.run_id}_{self.count(prefix)}"

    def count(self, prefix: str) -> int:
        """The next number for ``prefix``, 1 first."""
        n = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = n
        return n


# --- building blocks of a card's script -------------------------------------------------------


class ScriptBuilder:
    """Builds one card's script step by step, tracking what FINCI knows about the card.

    The scenario generators below use it; tests use it to write a precise script by hand.
    """

    def __init__(self, card: SimCard, rng: random.Random, ids: Ids) -> None:
        self.card = card
        self.rng = rng
        self.ids = ids
        self.status = card.token_status
        self.stage = card.token_stage
        self.steps: list[Step] = []

    def done(self) -> CardScript:
        return CardScript(self.card.token_id, tuple(self.steps))

    def merchant(self, choices: Sequence[tuple[str, str, str]] = _MERCHANTS) -> dict[str, str]:
        name, mcc, country = self.rng.choice(choices)
        return {"name": name, "mcc": mcc, "country": country}

    def amount(self, low: int = 150, high: int = 9_000) -> int:
        return self.rng.randint(low, high)

    def _money(self, type_: MessageType, id_: str, amount: int, currency: str | None,
               merchant: Mapping[str, str]) -> dict[str, Any]:
        return {
            "type": type_.value,
            "id": id_,
            "token_id": self.card.token_id,
            "amount": amount,
            "currency": currency or self.card.currency,
            "merchant": dict(merchant),
        }

    def authorize(
        self,
        amount: int,
        *,
        merchant: Mapping[str, str] | None = None,
        expect: Answer | None = None,
        currency: str | None = None,
    ) -> Step:
        auth_id = self.ids.next("auth")
        body = self._money(
            MessageType.AUTHORIZATION, auth_id, amount, currency, merchant or self.merchant()
        )
        body["advice"] = False
        step = Step(
            StepKind.AUTHORIZATION,
            MappingProxyType(body),
            webhook_id=self.ids.next("msg"),
            advice_webhook_id=self.ids.next("msg"),
            expect=expect,
        )
        self.steps.append(step)
        return step

    def finci_advice(self, amount: int, response_code: str) -> Step:
        body = self._money(
            MessageType.AUTHORIZATION, self.ids.next("auth"), amount, None, self.merchant()
        )
        body.update(advice=True, response_code=response_code)
        step = Step(StepKind.FINCI_ADVICE, MappingProxyType(body), webhook_id=self.ids.next("msg"))
        self.steps.append(step)
        return step

    def follow_up(
        self,
        kind: StepKind,
        amount: int,
        auth: Step | None,
        *,
        authorization_id: str | None = None,
        currency: str | None = None,
        conditional: bool = True,
        merchant: Mapping[str, str] | None = None,
    ) -> Step:
        """A reversal, presentment or refund, linked to ``auth`` when there is one."""
        prefix = {StepKind.REVERSAL: "rev", StepKind.PRESENTMENT: "pres", StepKind.REFUND: "ref"}
        if auth is not None:
            authorization_id = auth.message_id
            merchant = merchant or auth.body["merchant"]
            currency = currency or auth.body["currency"]
        body = self._money(
            MessageType(kind.value), self.ids.next(prefix[kind]), amount, currency,
            merchant or self.merchant(),
        )
        if authorization_id is not None:
            body["authorization_id"] = authorization_id
        step = Step(
            kind,
            MappingProxyType(body),
            webhook_id=self.ids.next("msg"),
            after_approval_of=auth.message_id if auth is not None and conditional else None,
        )
        self.steps.append(step)
        return step

    def card_status(self, status: TokenStatus, stage: TokenStage | None = None) -> Step:
        self.status = status
        self.stage = stage or self.stage
        body = {
            "type": MessageType.CARD_STATUS.value,
            "id": self.ids.next("cst"),
            "token_id": self.card.token_id,
            "token_status": status.value,
            "token_stage": self.stage.value,
        }
        step = Step(StepKind.CARD_STATUS, MappingProxyType(body), webhook_id=self.ids.next("msg"))
        self.steps.append(step)
        return step


# --- per-card script generators (reusable by property tests) ----------------------------------

CardScriptGenerator = Callable[[SimCard, random.Random, Ids], CardScript]


def happy_card_script(card: SimCard, rng: random.Random, ids: Ids) -> CardScript:
    """Two to four ordinary transactions on an active card, drawn from the whole lifecycle:
    full and partial clearing, reversal, refund after clearing, presentment-first, a temporary
    suspension with a FINCI-decided decline, and the plastic being delivered."""
    script = ScriptBuilder(card, rng, ids)
    _ordinary_stories(script, rng)
    return script.done()


def _ordinary_stories(script: ScriptBuilder, rng: random.Random) -> None:
    stories = ("full", "partial", "reversal", "refund", "offline", "suspension", "delivered")
    weights = (30, 15, 12, 12, 8, 4, 4)
    for _ in range(rng.randint(2, 4)):
        story = rng.choices(stories, weights)[0]
        if story == "full":
            auth = script.authorize(script.amount())
            script.follow_up(StepKind.PRESENTMENT, auth.body["amount"], auth)
        elif story == "partial":
            amount = script.amount(2_000, 20_000)
            auth = script.authorize(amount, merchant=script.merchant(_ESTIMATING_MERCHANTS))
            script.follow_up(StepKind.PRESENTMENT, rng.randint(amount // 4, amount - 1), auth)
        elif story == "reversal":
            auth = script.authorize(script.amount())
            script.follow_up(StepKind.REVERSAL, auth.body["amount"], auth)
        elif story == "refund":
            auth = script.authorize(script.amount())
            script.follow_up(StepKind.PRESENTMENT, auth.body["amount"], auth)
            script.follow_up(StepKind.REFUND, rng.randint(100, auth.body["amount"]), auth)
        elif story == "offline":
            offline = {"name": _OFFLINE_MERCHANT[0], "mcc": _OFFLINE_MERCHANT[1],
                       "country": _OFFLINE_MERCHANT[2]}
            script.follow_up(StepKind.PRESENTMENT, script.amount(), None, merchant=offline)
        elif story == "suspension" and script.status is TokenStatus.ACTIVE:
            script.card_status(TokenStatus.DEACTIVATED)
            script.finci_advice(script.amount(), FINCI_OWN_DECLINE_CODE)
            script.card_status(TokenStatus.ACTIVE)
        elif story == "delivered" and script.stage is TokenStage.PLASTIC_NOT_DELIVERED:
            script.card_status(script.status, TokenStage.PLASTIC_DELIVERED)
        else:  # a story that does not fit the card's state: an ordinary purchase instead
            auth = script.authorize(script.amount())
            script.follow_up(StepKind.PRESENTMENT, auth.body["amount"], auth)


# What `flask demo seed` gives the console (console.demo_seed reads these), so the demo's
# declines are scripted against the seeded balance and rules rather than guessed.
DEMO_OPENING_BALANCE = 2_500_00  # minor units: enough for a day of simulated purchases
DEMO_TRANSACTION_LIMIT = 1_000_00  # per-card, per-authorization limit in every card currency
DEMO_VELOCITY_MAX = 30  # authorization requests per card per minute (the default rule)
DEMO_DECLINES = ("insufficient_funds", "limit_exceeded", "velocity")


def demo_card_script(card: SimCard, rng: random.Random, ids: Ids, *,
                     decline_rate: float = 0.3) -> CardScript:
    """Ordinary lifecycles (:func:`happy_card_script`), and for some cards an authorization
    the seeded console declines, one kind after the other: over the opening balance, over the
    per-transaction limit (within the balance), or one request too many for the velocity rule.
    Declined authorizations get no follow-up: FINCI never clears them."""
    script = ScriptBuilder(card, rng, ids)
    _ordinary_stories(script, rng)
    if script.status is TokenStatus.ACTIVE and rng.random() < decline_rate:
        kind = DEMO_DECLINES[(ids.count("decline") - 1) % len(DEMO_DECLINES)]
        if kind == "insufficient_funds":
            script.authorize(DEMO_OPENING_BALANCE + script.amount())
        elif kind == "limit_exceeded":
            script.authorize(DEMO_TRANSACTION_LIMIT + script.amount())
        else:
            for _ in range(DEMO_VELOCITY_MAX + 1):
                script.authorize(script.amount(100, 500))
    return script.done()


def storm_card_script(
    card: SimCard, rng: random.Random, ids: Ids, *, authorizations: int = 4
) -> CardScript:
    """Back-to-back authorizations on one card and nothing else: all the load lands on the
    console's 3-second answer path."""
    script = ScriptBuilder(card, rng, ids)
    for _ in range(authorizations):
        script.authorize(script.amount(100, 3_000))
    return script.done()


def clearing_failures_card_script(card: SimCard, rng: random.Random, ids: Ids) -> CardScript:
    """Clearing the console must accept (HTTP 200) and then flag: presentments over the hold,
    in another currency, twice for one authorization, or for an authorization never seen;
    a refund of an unknown authorization; and a legitimate presentment-first in between."""
    script = ScriptBuilder(card, rng, ids)
    failures = ("over_hold", "currency", "double", "unknown_auth", "unknown_refund")
    for story in [*rng.sample(failures, k=3), "offline"]:
        if story == "over_hold":
            auth = script.authorize(script.amount(1_000, 5_000))
            over = auth.body["amount"] + rng.randint(1, auth.body["amount"])
            script.follow_up(StepKind.PRESENTMENT, over, auth)
        elif story == "currency":
            auth = script.authorize(script.amount())
            other = "USD" if auth.body["currency"] != "USD" else "EUR"
            script.follow_up(StepKind.PRESENTMENT, auth.body["amount"], auth, currency=other)
        elif story == "double":
            auth = script.authorize(script.amount())
            script.follow_up(StepKind.PRESENTMENT, auth.body["amount"], auth)
            script.follow_up(StepKind.PRESENTMENT, auth.body["amount"], auth)
        elif story == "unknown_auth":
            script.follow_up(StepKind.PRESENTMENT, script.amount(), None,
                             authorization_id=ids.next("auth") + "_unseen")
        elif story == "unknown_refund":
            script.follow_up(StepKind.REFUND, script.amount(), None,
                             authorization_id=ids.next("auth") + "_unseen")
        else:
            offline = {"name": _OFFLINE_MERCHANT[0], "mcc": _OFFLINE_MERCHANT[1],
                       "country": _OFFLINE_MERCHANT[2]}
            script.follow_up(StepKind.PRESENTMENT, script.amount(), None, merchant=offline)
    return script.done()


def unknown_card_script(rng: random.Random, ids: Ids, currency: str = "EUR") -> CardScript:
    """Clearing for a card the console has never heard of (nor has FINCI's card book)."""
    ghost = SimCard(
        token_id=random_token_id(rng) + "ghost",
        embossing_name="UNKNOWN",
        card_number="0000-00**-****-0000",
        expiration_date="2030-01",
        product_id="prod_unknown",
        currency=currency,
        token_status=TokenStatus.ACTIVE,
        token_stage=TokenStage.DIGITAL,
    )
    script = ScriptBuilder(ghost, rng, ids)
    script.follow_up(StepKind.PRESENTMENT, script.amount(), None)
    script.follow_up(StepKind.REFUND, script.amount(100, 500), None,
                     authorization_id=ids.next("auth") + "_unseen")
    return script.done()


def compromise_card_script(card: SimCard, rng: random.Random, ids: Ids) -> CardScript:
    """A card is reported compromised between two purchases.

    Before: one purchase cleared and one authorized but not yet cleared. Then FINCI announces
    ``compromized``. After: FINCI declines on its own (advice only), and also asks the console
    twice anyway, as it could while its own status check lags the change: the console must
    answer ``error`` to both. The earlier authorization still clears: it predates the event.
    """
    script = ScriptBuilder(card, rng, ids)
    first = script.authorize(script.amount())
    script.follow_up(StepKind.PRESENTMENT, first.body["amount"], first)
    pending = script.authorize(script.amount())
    script.card_status(TokenStatus.COMPROMIZED)
    script.finci_advice(script.amount(), FINCI_OWN_DECLINE_CODE)
    for _ in range(2):
        script.authorize(script.amount(), expect=Answer.ERROR)
    script.follow_up(StepKind.PRESENTMENT, pending.body["amount"], pending)
    return script.done()


# --- delivery plans ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Rates of FINCI's delivery misbehaviour, turned into per-message :class:`Delivery` plans.

    Every step draws the same number of random values whatever the rates, so changing one rate
    never reshuffles the other choices of a seeded run.
    """

    duplicate_rate: float = 0.0
    max_copies: int = 3  # a duplicated message is delivered 2..max_copies times in all
    race_rate: float = 0.0  # share of duplicated messages whose copies race the original
    out_of_order_rate: float = 0.0
    delay_rate: float = 0.0
    max_delay_s: float = 2.0

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "race_rate", "out_of_order_rate", "delay_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.max_copies < 2:
            raise ValueError("max_copies must be at least 2")
        if self.max_delay_s < 0:
            raise ValueError("max_delay_s must not be negative")

    def plan(self, rng: random.Random, *, request: bool = False) -> Delivery:
        duplicate, race, copies = rng.random(), rng.random(), rng.randint(2, self.max_copies)
        hold, delay, delay_s = rng.random(), rng.random(), rng.uniform(0, self.max_delay_s)
        return Delivery(
            copies=copies if duplicate < self.duplicate_rate else 1,
            race=duplicate < self.duplicate_rate and race < self.race_rate,
            # A request cannot be held or delayed: FINCI is waiting on it, and its advice
            # depends on the answer.
            hold=not request and hold < self.out_of_order_rate,
            delay_s=round(delay_s, 3) if not request and delay < self.delay_rate else 0.0,
        )

    def apply(self, script: CardScript, rng: random.Random) -> CardScript:
        steps = []
        for step in script.steps:
            request = step.kind is StepKind.AUTHORIZATION
            first = self.plan(rng, request=request)
            advice = self.plan(rng) if request else PLAIN
            steps.append(replace(step, delivery=first, advice_delivery=advice))
        return replace(script, steps=tuple(steps))


CLEAN: Final = DeliveryPolicy()


# --- the scenarios ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named run: which script each card gets, how delivery misbehaves, how hard to push."""

    name: str
    summary: str
    card_script: CardScriptGenerator
    cards: int = 10
    delivery: DeliveryPolicy = CLEAN
    concurrency: int = 8
    burst: bool = False  # every card's script starts at the same instant
    malformed_rate: float = 0.0  # share of scripts followed by one request the console must refuse
    unknown_cards: int = 0  # extra scripts for cards nobody knows (clearing failures)
    endless: bool = False  # runs for --duration or until interrupted, paced by --rate
    params: Mapping[str, Any] = field(default_factory=dict)


SCENARIOS: Final[Mapping[str, Scenario]] = MappingProxyType(
    {
        s.name: s
        for s in (
            Scenario(
                "happy-path",
                "ordinary card lifecycles, delivered cleanly",
                happy_card_script,
                cards=10,
            ),
            Scenario(
                "timeout-storm",
                "a burst of concurrent authorization requests against FINCI's 3 s deadline; "
                "the report shows how many the console answered in time",
                storm_card_script,
                cards=120,
                concurrency=120,
                burst=True,
            ),
            Scenario(
                "duplicate-flood",
                "every message delivered two to four times, a third of the copies racing "
                "the original; duplicate answers must match",
                happy_card_script,
                cards=15,
                delivery=DeliveryPolicy(duplicate_rate=1.0, max_copies=4, race_rate=0.33,
                                        out_of_order_rate=0.1),
                malformed_rate=0.2,
            ),
            Scenario(
                "clearing-failures",
                "presentments over the hold, in another currency, twice, for unseen "
                "authorizations and unknown cards",
                clearing_failures_card_script,
                cards=8,
                unknown_cards=2,
            ),
            Scenario(
                "card-compromise",
                "cards reported compromized between purchases; later authorizations must "
                "be declined",
                compromise_card_script,
                cards=5,
            ),
            Scenario(
                "steady",
                "ordinary traffic at --rate messages/s with a little of everything messy "
                "and declines the seeded console must make (funds, limit, velocity), "
                "for --duration seconds or until interrupted",
                demo_card_script,
                cards=50,
                concurrency=32,
                delivery=DeliveryPolicy(duplicate_rate=0.03, race_rate=0.2,
                                        out_of_order_rate=0.03, delay_rate=0.02,
                                        max_delay_s=1.5),
                malformed_rate=0.02,
                endless=True,
            ),
        )
    }
)


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r} (one of: {', '.join(SCENARIOS)})") from None


def active_cards(book: CardBook, count: int) -> list[SimCard]:
    """The first ``count`` active cards of the book (scripts start from an active card)."""
    active = [c for c in book.cards() if c.token_status is TokenStatus.ACTIVE]
    if len(active) < count:
        raise ValueError(f"the card book has {len(active)} active cards; {count} needed")
    return active[:count]


def book_size_for(cards: int) -> int:
    """A book comfortably larger than the active cards a scenario needs (~85% are active)."""
    return max(50, cards * 3 // 2 + 10)


def run_book(seed: int, cards: int) -> CardBook:
    """FINCI's card book for a run that scripts ``cards`` cards with this ``seed``.

    The one source of truth for which cards exist: the runner scripts the first ``cards``
    active cards of it (:func:`active_cards`), the Card API served alongside a run serves it,
    and ``flask demo seed`` loads exactly this book into the console, so every card a run can
    send a message for is known to the console (the book is larger than ``cards``: a run's
    scripted cards are not the first ``cards`` of the book when some of those are inactive).
    """
    return CardBook.seeded(seed, book_size_for(cards))


def _rngs(seed: int) -> tuple[random.Random, random.Random, random.Random]:
    # Separate streams: content, delivery plans and noise never shift one another.
    return (
        seeded_random("scripts", seed),
        seeded_random("delivery", seed),
        seeded_random("noise", seed),
    )


def _bad_request(ids: Ids, script: CardScript, index: int) -> BadRequest:
    kinds = list(BadKind)
    body = dict(script.steps[0].body) if script.steps else {
        "type": MessageType.CARD_STATUS.value, "id": "cst_none",
        "token_id": script.token_id, "token_status": TokenStatus.ACTIVE.value}
    body["id"] = ids.next("bad")
    return BadRequest(kinds[index % len(kinds)], MappingProxyType(body), ids.next("msg"))


def work_items(
    scenario: Scenario | str,
    book: CardBook,
    *,
    seed: int,
    run_id: str,
    cards: int | None = None,
    delivery: DeliveryPolicy | None = None,
    malformed_rate: float | None = None,
) -> Iterator[WorkItem]:
    """Everything a run delivers, in submission order: card scripts with delivery plans applied,
    and after some of them a request the console must refuse.

    Finite for every scenario but ``steady``, which cycles over its cards for ever (the runner
    stops it). Deterministic for a given book, seed and ``run_id``.
    """
    scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
    policy = scenario.delivery if delivery is None else delivery
    bad_rate = scenario.malformed_rate if malformed_rate is None else malformed_rate
    if not 0.0 <= bad_rate <= 1.0:
        raise ValueError("malformed_rate must be between 0 and 1")
    chosen = active_cards(book, cards if cards is not None else scenario.cards)
    content, plans, noise = _rngs(seed)
    ids = Ids(run_id)
    bad_count = 0

    def finish(script: CardScript) -> Iterator[WorkItem]:
        nonlocal bad_count
        yield policy.apply(script, plans)
        if noise.random() < bad_rate:
            yield _bad_request(ids, script, bad_count)
            bad_count += 1

    def generate(card: SimCard) -> CardScript:
        return scenario.card_script(card, content, ids, **scenario.params)

    while True:
        for card in chosen:
            yield from finish(generate(card))
        for _ in range(scenario.unknown_cards):
            yield from finish(unknown_card_script(content, ids))
        if not scenario.endless:
            return


def card_script(
    card: SimCard, *, seed: int, run_id: str = "prop", scenario: str = "happy-path"
) -> CardScript:
    """One card's script as ``scenario`` would write it, without delivery misbehaviour:
    the entry point for property tests (``card`` may be any :class:`SimCard`)."""
    generator = get_scenario(scenario)
    rng = seeded_random("scripts", seed)
    return generator.card_script(card, rng, Ids(run_id), **generator.params)


def validate_run_id(run_id: str) -> str:
    if not _RUN_ID_RE.fullmatch(run_id):
        raise ValueError("run_id must be 1..16 lowercase letters or digits")
    return run_id

