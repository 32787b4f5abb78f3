"""Decisioning settings: who decides (us or FINCI), the time budget and the fallback answers.

Variables:

DECISIONING_MODE              ``integrator`` (we approve/decline each authorization, default) or
                              ``finci`` (FINCI decides; we acknowledge requests and track advices)
DECISIONING_BUDGET_S          internal answer budget in seconds (default 1.5; 0.1..2.5, always
                              well inside FINCI's 3 s)
DECISIONING_SAFE_DEFAULT      answer when the budget runs out or anything fails (default error)
DECISIONING_STAND_IN          answer while the decisioning kill switch is off (default error)
DECISIONING_STAND_IN_APPROVE_UP_TO
                              while the kill switch is off, approve (and hold) requests up to
                              this amount in minor units, 1..10000; unset (default): never
DECISIONING_STAND_IN_CURRENCY the currency that cap is in (ISO 4217, required with the cap); a
                              request in another currency, or above the cap, is declined
DECISIONING_ACKNOWLEDGEMENT   answer to requests in FINCI-managed mode (default success: it only
                              acknowledges receipt, FINCI has decided already)
DECISIONING_HOLD_TTL_HOURS    an open hold with no clearing is released after this long (168)

A safe default of ``success`` is refused in production: a failure must never approve. So is a
stand-in of ``success``: switching decisioning off must not turn into approving everything. In
the sandbox it is allowed (to exercise the stand-in path); its approvals place holds like any
other. A small per-transaction cap is allowed everywhere (the stand-in must then be ``error``:
the cap says what may be approved, and everything else is declined).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from console.finci import contract


class DecisioningMode(StrEnum):
    INTEGRATOR = "integrator"  # integrator-managed decisioning: our rules answer
    FINCI = "finci"            # FINCI-managed: we make no decisions, we only observe


class AnswerStatus(StrEnum):
    """FINCI's words for an answer to an authorization request (B.4)."""

    SUCCESS = "success"  # approve
    ERROR = "error"      # decline

    @property
    def approves(self) -> bool:
        return self is AnswerStatus.SUCCESS


# The largest stand-in approval cap: "small" is part of the rule, so that switching decisioning
# off can never approve large amounts unchecked, in production or anywhere else.
STAND_IN_CAP_MAX = 10_000
_CURRENCY = re.compile(r"[A-Z]{3}")

BUDGET_MIN_S = 0.1
# Leaves at least half a second of FINCI's 3 s for the network and the ingress's own writes.
BUDGET_MAX_S = 2.5


@dataclass(frozen=True)
class DecisioningSettings:
    mode: DecisioningMode = DecisioningMode.INTEGRATOR
    budget_s: float = 1.5
    safe_default: AnswerStatus = AnswerStatus.ERROR
    stand_in: AnswerStatus = AnswerStatus.ERROR
    acknowledgement: AnswerStatus = AnswerStatus.SUCCESS
    hold_ttl_hours: int = 168
    stand_in_approve_up_to: int | None = None
    stand_in_currency: str | None = None

    def __post_init__(self) -> None:
        from console.settings import ConfigError

        if self.stand_in_approve_up_to is not None:
            if not 1 <= self.stand_in_approve_up_to <= STAND_IN_CAP_MAX:
                raise ConfigError(f"DECISIONING_STAND_IN_APPROVE_UP_TO="
                                  f"{self.stand_in_approve_up_to} is out of range "
                                  f"(1..{STAND_IN_CAP_MAX})")
            if not _CURRENCY.fullmatch(self.stand_in_currency or ""):
                raise ConfigError("DECISIONING_STAND_IN_CURRENCY (an ISO 4217 code like EUR) "
                                  "is required with DECISIONING_STAND_IN_APPROVE_UP_TO")
            if self.stand_in.approves:
                raise ConfigError("DECISIONING_STAND_IN_APPROVE_UP_TO needs "
                                  "DECISIONING_STAND_IN=error: above the cap it declines")
        elif self.stand_in_currency is not None:
            raise ConfigError("DECISIONING_STAND_IN_CURRENCY is only used with "
                              "DECISIONING_STAND_IN_APPROVE_UP_TO")

        if not BUDGET_MIN_S <= self.budget_s <= BUDGET_MAX_S:
            raise ConfigError(f"DECISIONING_BUDGET_S={self.budget_s} is out of range "
                              f"({BUDGET_MIN_S}..{BUDGET_MAX_S})")
        if self.budget_s >= contract.AUTHORIZATION_ANSWER_DEADLINE_SECONDS:
            raise ConfigError("DECISIONING_BUDGET_S must stay below FINCI's deadline")

    def stand_in_answer(self, amount: int | None, currency: str | None) -> AnswerStatus:
        """The answer while the kill switch is off: the stand-in, or an approval up to the cap."""
        cap = self.stand_in_approve_up_to
        if (cap is not None and currency == self.stand_in_currency and amount is not None
                and 0 <= amount <= cap):
            return AnswerStatus.SUCCESS
        return self.stand_in

    @property
    def integrator_managed(self) -> bool:
        return self.mode is DecisioningMode.INTEGRATOR

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, production: bool) -> DecisioningSettings:
        from console.settings import ConfigError, _choice, _float, _int, _read

        safe_default = _choice(env, "DECISIONING_SAFE_DEFAULT", AnswerStatus, AnswerStatus.ERROR)
        if production and safe_default is AnswerStatus.SUCCESS:
            raise ConfigError("DECISIONING_SAFE_DEFAULT=success is not allowed in production")
        stand_in = _choice(env, "DECISIONING_STAND_IN", AnswerStatus, AnswerStatus.ERROR)
        if production and stand_in is AnswerStatus.SUCCESS:
            raise ConfigError("DECISIONING_STAND_IN=success is not allowed in production: the "
                              "decisioning kill switch would approve every authorization")
        return cls(
            mode=_choice(env, "DECISIONING_MODE", DecisioningMode, DecisioningMode.INTEGRATOR),
            budget_s=_float(env, "DECISIONING_BUDGET_S", 1.5,
                            minimum=BUDGET_MIN_S, maximum=BUDGET_MAX_S),
            safe_default=safe_default,
            stand_in=stand_in,
            acknowledgement=_choice(env, "DECISIONING_ACKNOWLEDGEMENT", AnswerStatus,
                                    AnswerStatus.SUCCESS),
            hold_ttl_hours=_int(env, "DECISIONING_HOLD_TTL_HOURS", 168, minimum=1,
                                maximum=24 * 60),
            stand_in_approve_up_to=_int(env, "DECISIONING_STAND_IN_APPROVE_UP_TO", None,
                                        minimum=1, maximum=STAND_IN_CAP_MAX),
            stand_in_currency=_read(env, "DECISIONING_STAND_IN_CURRENCY") or None,
        )
