"""What the keys page and ``keys list`` show of the inventory: rows with last use, and a month
list of upcoming expiries and retirement deadlines. No values, only fingerprints and dates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from console.keys import inventory
from console.keys.inventory import ALLOWED, Kind, State
from console.keys.models import Credential
from console.keys.services import USAGE_WINDOW, secret_usage

BADGES = {"pending": "warning", "active": "ok", "retiring": "warning", "retired": "",
          "revoked": "error"}
LABELS = {Kind.FINCI_API_TOKEN.value: "FINCI API token",
          Kind.FINCI_API_SECRET.value: "FINCI API secret",
          Kind.WEBHOOK_SECRET.value: "Webhook signing secret",
          Kind.CARD_DATA_KEY.value: "Card-data key pair",
          Kind.TLS_CERTIFICATE.value: "TLS certificate",
          Kind.SSO_CLIENT_SECRET.value: "SSO client secret"}


@dataclass(frozen=True)
class Row:
    credential: Credential
    last_used_at: dt.datetime | None
    verified_7d: int

    @property
    def in_use(self) -> bool:
        return self.credential.status in (State.ACTIVE.value, State.RETIRING.value)

    @property
    def next_states(self) -> list[str]:
        return sorted(s.value for s in ALLOWED[State(self.credential.status)])


@dataclass(frozen=True)
class Month:
    first: dt.date
    entries: list[tuple[dt.datetime, str, Credential]]  # (when, what happens, credential)


def rows(session: Session, environment: str, at: dt.datetime) -> list[Row]:
    usage = secret_usage(session, at - USAGE_WINDOW)
    found = []
    for credential in inventory.listing(session, environment):
        count, last = usage.get(credential.fingerprint, (0, None)) \
            if credential.kind == Kind.WEBHOOK_SECRET.value else (0, None)
        found.append(Row(credential, last or credential.last_used_at, count))
    return found


def calendar(found: list[Row], today: dt.date, months: int = 12) -> list[Month]:
    """The next ``months`` months (this one first), each with what expires or stops in it;
    anything already overdue is listed in this month."""
    starts = []
    year, month = today.year, today.month
    for _ in range(months):
        starts.append(dt.date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    buckets: dict[dt.date, list] = {start: [] for start in starts}
    for row in found:
        c = row.credential
        if c.status in (State.RETIRED.value, State.REVOKED.value):
            continue
        for when, what in ((c.expires_at, "expires"), (c.retire_after, "stops verifying")):
            if when is None:
                continue
            key = max(dt.date(when.year, when.month, 1), starts[0])
            if key in buckets:
                buckets[key].append((when, what, c))
    return [Month(start, sorted(buckets[start], key=lambda e: e[0])) for start in starts]
