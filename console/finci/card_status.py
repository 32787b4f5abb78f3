"""The working card status transition model, and operator actions on top of it.

From the portal: ``new`` -> ``active``; ``active`` <-> ``deactivated`` is the only reversible
pair; ``blocked``, ``closed``, ``compromized``, ``damaged``, ``lost``, ``stolen`` are end states;
only ``active`` cards can be approved.

Our assumptions where the portal is silent (change them here only):

- Any status that is not an end state may move to any end state: a card can be lost, stolen or
  blocked whether it is new, active, suspended or under referral.
- ``referral`` is not an end state. It is set by FINCI, never requested by us, so no transition
  leads into it; from it a card may go back to ``active`` or to an end state.
- Asking for the status a card already has is refused, so an operator is told rather than a
  no-op request being sent and audited as a change.

This model governs what the console *asks* FINCI to do. A status FINCI *reports* is a fact to
record even when the model would not have allowed it; :func:`is_modelled_transition` lets the
caller flag such a report for review instead of rejecting it.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Final

from console.finci.contract import TokenStatus


class TransitionRefused(ValueError):
    """The requested status change is not allowed by the working model."""

    def __init__(self, from_status: object, to_status: object, why: str) -> None:
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(f"cannot change card status from {from_status!r} to {to_status!r}: {why}")


END_STATES: Final = frozenset(
    {
        TokenStatus.BLOCKED,
        TokenStatus.CLOSED,
        TokenStatus.COMPROMIZED,
        TokenStatus.DAMAGED,
        TokenStatus.LOST,
        TokenStatus.STOLEN,
    }
)

TRANSITIONS: Final = MappingProxyType(
    {
        TokenStatus.NEW: frozenset({TokenStatus.ACTIVE}) | END_STATES,
        TokenStatus.ACTIVE: frozenset({TokenStatus.DEACTIVATED}) | END_STATES,
        TokenStatus.DEACTIVATED: frozenset({TokenStatus.ACTIVE}) | END_STATES,
        TokenStatus.REFERRAL: frozenset({TokenStatus.ACTIVE}) | END_STATES,
        **{status: frozenset[TokenStatus]() for status in END_STATES},
    }
)


class OperatorAction(StrEnum):
    """What an operator can ask for in the console, each mapped to one target status."""

    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"
    BLOCK = "block"
    REPORT_LOST = "report_lost"
    REPORT_STOLEN = "report_stolen"


ACTION_TARGETS: Final = MappingProxyType(
    {
        OperatorAction.DEACTIVATE: TokenStatus.DEACTIVATED,
        OperatorAction.REACTIVATE: TokenStatus.ACTIVE,
        OperatorAction.BLOCK: TokenStatus.BLOCKED,
        OperatorAction.REPORT_LOST: TokenStatus.LOST,
        OperatorAction.REPORT_STOLEN: TokenStatus.STOLEN,
    }
)


def _status(value: TokenStatus | str) -> TokenStatus | None:
    try:
        return TokenStatus(value)
    except (ValueError, TypeError):
        return None


def is_end_state(status: TokenStatus | str) -> bool:
    parsed = _status(status)
    return parsed in END_STATES


def allowed_transitions(from_status: TokenStatus | str) -> frozenset[TokenStatus]:
    """Statuses the console may request from ``from_status``; empty for unknown statuses."""
    parsed = _status(from_status)
    return TRANSITIONS[parsed] if parsed is not None else frozenset()


def is_modelled_transition(from_status: TokenStatus | str, to_status: TokenStatus | str) -> bool:
    parsed = _status(to_status)
    return parsed is not None and parsed in allowed_transitions(from_status)


def check_transition(from_status: TokenStatus | str, to_status: TokenStatus | str) -> TokenStatus:
    """Return the target status if the change may be requested; raise :class:`TransitionRefused`."""
    source, target = _status(from_status), _status(to_status)
    if source is None:
        raise TransitionRefused(from_status, to_status, "the current status is not a known status")
    if target is None:
        raise TransitionRefused(from_status, to_status, "the target status is not a known status")
    if source == target:
        raise TransitionRefused(source.value, target.value, f"the card is already {source.value}")
    if source in END_STATES:
        raise TransitionRefused(
            source.value, target.value, f"{source.value!r} is an end state and cannot change"
        )
    if target == TokenStatus.REFERRAL:
        raise TransitionRefused(
            source.value, target.value, "'referral' is set by FINCI and cannot be requested"
        )
    if target not in TRANSITIONS[source]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[source]))
        raise TransitionRefused(
            source.value, target.value, f"from {source.value!r} only these are allowed: {allowed}"
        )
    return target


def target_status(action: OperatorAction | str) -> TokenStatus:
    """The status an operator action asks for. Raises ``ValueError`` for unknown actions."""
    return ACTION_TARGETS[OperatorAction(action)]


def plan_action(current: TokenStatus | str, action: OperatorAction | str) -> TokenStatus:
    """Target status of ``action`` on a card in ``current``, or :class:`TransitionRefused`."""
    return check_transition(current, target_status(action))


def can_approve(status: TokenStatus | str | None) -> bool:
    """Only ``active`` cards can be approved; anything unknown or missing is a decline."""
    return status is not None and _status(status) == TokenStatus.ACTIVE
