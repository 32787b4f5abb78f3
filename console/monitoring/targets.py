"""What the Overview flags as bad: each figure's target, in one place.

FINCI gives the authorization window (console.finci.contract); the others are our operating
targets. A value past its target is shown flagged (badge and text), never as plain text.
"""

from __future__ import annotations

from console.finci import contract

# Webhooks should arrive within seconds of FINCI creating them; a p99 beyond this means
# deliveries are queuing or being retried (FINCI or our ingress is struggling).
DELIVERY_LATENCY_P99_MS = 5_000.0
# Our answer must leave well inside FINCI's window; past half of it, a slow database or a rule
# is eating the margin that protects cardholders from FINCI's timeout decline.
AUTHORIZATION_P99_MS = contract.AUTHORIZATION_ANSWER_DEADLINE_SECONDS * 1000 / 2


def breached(value: float | None, target: float) -> bool:
    """A known value past its target (no data is not a breach: the panels say "—")."""
    return value is not None and value > target
