"""The simulator's FINCI side of card data (FINCI.md B.5): JWE to the public key we registered.

FINCI's book here never holds a full number (console.simulator.cards). When a card-data key is
registered with the simulator (its ``kid`` and SPKI PEM, as an operator hands them to FINCI),
``get-cards`` items carry ``encrypted_card_data``: a test number made up from the card's visible
six and four digits (the middle chosen so the Luhn check holds), encrypted at once. The number
exists only inside that token and the call that builds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from console.finci import contract
from console.keys.jwe import encrypt_for
from console.security.redaction import luhn_valid
from console.simulator.cards import SimCard


def made_up_number(masked: str) -> str:
    """A 16-digit Luhn-valid number with the first six and last four of ``masked``."""
    digits = masked.replace("-", "")
    head, tail = digits[:6], digits[-4:]
    # The fifth digit from the right is not doubled by Luhn, so each of its ten values gives
    # another check sum: exactly one of them passes.
    return next(number for number in (f"{head}00000{check}{tail}" for check in "0123456789")
                if luhn_valid(number))


@dataclass(frozen=True)
class RegisteredKey:
    """Our public key as registered with (simulated) FINCI."""

    kid: str
    public_pem: str

    def __repr__(self) -> str:
        return f"RegisteredKey({self.kid})"

    def encrypt(self, card: SimCard) -> str:
        payload = {contract.CARD_DATA_NUMBER_FIELD: made_up_number(card.card_number),
                   contract.CARD_DATA_EXPIRY_FIELD: card.expiration_date}
        return encrypt_for(self.public_pem, self.kid, json.dumps(payload).encode())
