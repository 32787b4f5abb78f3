"""FINCI's card book as the simulator keeps it: in memory, seeded, masked numbers only.

The book is FINCI's side of the truth during a run: the Card API server reads and changes it,
and the scenario runner records the status changes it announces by webhook. A full card number
never exists here: a card is generated as a BIN (first six digits) and a last four, and only
the masked ``XXXX-XX**-****-XXXX`` form is ever built from them.
"""

from __future__ import annotations

import random
import string
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from console.finci import card_status, contract
from console.finci.contract import TokenStage, TokenStatus

# Mastercard ranges (FINCI issues Mastercard); only ever used as the visible six digits.
_BINS: Final = ("520000", "531234", "545454", "222300", "555555")
_CONSUMER_PRODUCTS: Final = ("prod_debit_eur", "prod_prepaid_gbp")
_CORPORATE_PRODUCT: Final = "prod_corporate_eur"
_PRODUCT_CURRENCY: Final = {
    "prod_debit_eur": "EUR",
    "prod_corporate_eur": "EUR",
    "prod_prepaid_gbp": "GBP",
}
_FIRST: Final = ("ADA", "ALAN", "GRACE", "EDSGER", "BARBARA", "DONALD", "KATHERINE", "LINUS")
_LAST: Final = ("LOVELACE", "TURING", "HOPPER", "DIJKSTRA", "LISKOV", "KNUTH", "JOHNSON", "PAULING")
# Letters only: an identifier can then never contain a digit run that looks like a card number.
_ID_ALPHABET: Final = string.ascii_lowercase


def seeded_random(purpose: str, seed: int) -> random.Random:
    """A reproducible generator for one purpose of one seed.

    Simulation data and fault injection only: nothing drawn from it is a secret, which is why
    a non-cryptographic generator is right here (and is what makes runs reproducible).
    """
    return random.Random(f"finci-simulator-{purpose}:{seed}")  # nosec B311


class UnknownCard(KeyError):
    """No card with this ``token_id`` in the book."""


def masked_number(bin6: str, last4: str) -> str:
    """``XXXX-XX**-****-XXXX`` from the six visible leading digits and the last four."""
    if not (len(bin6) == 6 and bin6.isdigit() and len(last4) == 4 and last4.isdigit()):
        raise ValueError("need six leading and four trailing digits")
    return f"{bin6[:4]}-{bin6[4:]}**-****-{last4}"


@dataclass(frozen=True, slots=True)
class SimCard:
    """One card as FINCI holds it. ``card_number`` is the masked form, and the only form."""

    token_id: str
    embossing_name: str
    card_number: str
    expiration_date: str
    product_id: str
    currency: str
    token_status: TokenStatus
    token_stage: TokenStage
    person_id: str | None = None
    corporate_id: str | None = None
    employee_id: str | None = None

    def api_item(self) -> dict[str, str]:
        """The ``get-cards`` item: exactly the documented fields, nothing more."""
        return {
            "token_id": self.token_id,
            "embossing_name": self.embossing_name,
            "card_number": self.card_number,
            "expiration_date": self.expiration_date,
            "product_id": self.product_id,
        }


def random_token_id(rng: random.Random) -> str:
    return "tok_" + "".join(rng.choice(_ID_ALPHABET) for _ in range(20))


def seeded_cards(seed: int, count: int) -> list[SimCard]:
    """``count`` cards, the same for the same seed.

    About five in six are active consumer cards; the rest are corporate (employees under a few
    corporates) or in another status (new, deactivated, blocked), so the Card API shows the
    whole model. The first card is always an active consumer card so small runs have one.
    ``seeded_cards(seed, n)`` is a prefix of ``seeded_cards(seed, m)`` for ``n < m``.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    rng = seeded_random("cards", seed)
    # A fixed pool, so that a smaller book is always a prefix of a larger one with the same seed:
    # the Card API served alone and a scenario run then agree on every card they both have.
    corporates = [f"{9000 + n}" for n in range(5)]
    cards = []
    for index in range(count):
        corporate = index % 6 == 5
        product = _CORPORATE_PRODUCT if corporate else rng.choice(_CONSUMER_PRODUCTS)
        if index == 0:
            status = TokenStatus.ACTIVE
        else:
            status = rng.choices(
                [TokenStatus.ACTIVE, TokenStatus.NEW, TokenStatus.DEACTIVATED, TokenStatus.BLOCKED],
                weights=[85, 6, 6, 3],
            )[0]
        cards.append(
            SimCard(
                token_id=random_token_id(rng),
                embossing_name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                card_number=masked_number(
                    rng.choice(_BINS), "".join(rng.choice(string.digits) for _ in range(4))
                ),
                expiration_date=f"{rng.randint(2027, 2031)}-{rng.randint(1, 12):02d}",
                product_id=product,
                currency=_PRODUCT_CURRENCY[product],
                token_status=status,
                token_stage=rng.choice(list(TokenStage)),
                person_id=None if corporate else f"{100000 + index}",
                corporate_id=rng.choice(corporates) if corporate else None,
                employee_id=f"{500000 + index}" if corporate else None,
            )
        )
    return cards


class CardBook:
    """Thread-safe in-memory card store: the Card API server and the runner share one."""

    def __init__(self, cards: Iterable[SimCard] = ()) -> None:
        self._lock = threading.Lock()
        self._cards: dict[str, SimCard] = {}
        for card in cards:
            if card.token_id in self._cards:
                raise ValueError("duplicate token_id in card book")
            self._cards[card.token_id] = card

    @classmethod
    def seeded(cls, seed: int, count: int = 50) -> CardBook:
        return cls(seeded_cards(seed, count))

    def __len__(self) -> int:
        with self._lock:
            return len(self._cards)

    def __contains__(self, token_id: object) -> bool:
        with self._lock:
            return token_id in self._cards

    def cards(self) -> list[SimCard]:
        with self._lock:
            return list(self._cards.values())

    def get(self, token_id: str) -> SimCard:
        with self._lock:
            try:
                return self._cards[token_id]
            except KeyError:
                raise UnknownCard(token_id) from None

    def by_owner(
        self, *, person_id: str | None = None, corporate_id: str | None = None
    ) -> list[SimCard]:
        """Cards of one person or one corporate (exactly one), in book order."""
        if (person_id is None) == (corporate_id is None):
            raise ValueError("give exactly one of person_id and corporate_id")
        with self._lock:
            if person_id is not None:
                return [c for c in self._cards.values() if c.person_id == person_id]
            return [c for c in self._cards.values() if c.corporate_id == corporate_id]

    def request_status(self, token_id: str, target: TokenStatus | str) -> SimCard:
        """A status change asked for through the Card API, checked against the working model.

        Asking for the status the card already has succeeds without change: both Card API
        updates set an absolute value, so a client repeating one after an ambiguous timeout
        must not be told it failed. Raises :class:`UnknownCard` or
        :class:`console.finci.card_status.TransitionRefused`.
        """
        with self._lock:
            card = self._require(token_id)
            if card.token_status == target:
                return card
            new_status = card_status.check_transition(card.token_status, target)
            card = replace(card, token_status=new_status)
            self._cards[token_id] = card
            return card

    def request_stage(self, token_id: str, target: TokenStage | str) -> SimCard:
        """A fulfilment stage change asked for through the Card API (documented targets only)."""
        stage = TokenStage(target)
        if stage not in contract.REQUESTABLE_TOKEN_STAGES:
            raise ValueError("token_stage is not a requestable stage")
        with self._lock:
            card = replace(self._require(token_id), token_stage=stage)
            self._cards[token_id] = card
            return card

    def record(
        self, token_id: str, status: TokenStatus | str, stage: TokenStage | str | None = None
    ) -> SimCard | None:
        """A change FINCI itself made and announces by webhook: a fact, not checked against
        the model. Unknown cards (clearing-failure scenarios invent some) are ignored."""
        with self._lock:
            card = self._cards.get(token_id)
            if card is None:
                return None
            card = replace(
                card,
                token_status=TokenStatus(status),
                token_stage=TokenStage(stage) if stage is not None else card.token_stage,
            )
            self._cards[token_id] = card
            return card

    def _require(self, token_id: str) -> SimCard:
        card = self._cards.get(token_id)
        if card is None:
            raise UnknownCard(token_id)
        return card
