"""The "what changed" feed for incident investigation: flow switches, keys and credentials,
configuration, access and replays, newest first, read from the audit log.

``CHANGES`` is the one place that says which audit action is a change, of which kind, how to
say it in a sentence and where the changed object lives. A new action appears in the feed once
it has a line there; actions that are not changes (logins, page views, automatic effects) are
listed in ``NOT_CHANGES`` so that a test notices an action nobody has classified yet. Anything
else, unknown action strings included, is never shown.

The feed is for everyone with panel access: each item carries a short sentence built from what
those pages already show (flow reason, rules version, replay number). The audit row's details
and the link to it are for ``VIEW_AUDIT`` only, and links to objects behind other permissions
(users, keys) only for those who may open them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit.actions import AuditAction, Outcome
from console.audit.models import AuditEvent
from console.security.permissions import Permission

PAGE_SIZE = 50
RECENT = 8  # items beside the Overview's panels


class ChangeKind(StrEnum):
    FLOW = "flow"
    CREDENTIAL = "credential"
    CONFIG = "config"
    ACCESS = "access"
    REPLAY = "replay"

    @property
    def label(self) -> str:
        return KIND_LABELS[self]


KIND_LABELS = {
    ChangeKind.FLOW: "Flow switch",
    ChangeKind.CREDENTIAL: "Keys and credentials",
    ChangeKind.CONFIG: "Configuration",
    ChangeKind.ACCESS: "Access",
    ChangeKind.REPLAY: "Replay",
}


@dataclass(frozen=True)
class Link:
    """Where the changed object is shown, and who may open that page."""

    endpoint: str
    permission: Permission
    values: dict = field(default_factory=dict)
    anchor: str | None = None


@dataclass(frozen=True)
class Change:
    seq: int
    at: dt.datetime
    kind: ChangeKind
    actor_type: str
    actor_id: str
    summary: str
    link: Link | None
    # The audit row's details (canonical JSON, card numbers already redacted): VIEW_AUDIT only.
    details: str | None


def _details(event: AuditEvent) -> dict:
    try:
        value = json.loads(event.details or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _after(details: dict, key: str):
    change = details.get("changes", {}).get(key)
    return change.get("after") if isinstance(change, dict) else None


REASON_SHOWN = 160  # characters of a reason in the sentence; the audit row has all of it


def _with_reason(text: str, details: dict) -> str:
    reason = details.get("reason")
    if not isinstance(reason, str) or not reason:
        return text
    if len(reason) > REASON_SHOWN:
        reason = reason[:REASON_SHOWN - 1] + "…"
    return f"{text}: {reason}"


def _flow_name(event: AuditEvent) -> str:
    return (event.target_id or "a flow").replace("_", " ")


def _flow(turned: str) -> Callable[[AuditEvent, dict], str]:
    def describe(event: AuditEvent, details: dict) -> str:
        text = f"Turned {_flow_name(event)} {turned}"
        revert_at = _after(details, "revert_at")
        if isinstance(revert_at, str):
            text += f" until {revert_at[:16].replace('T', ' ')} UTC"
        return _with_reason(text, details)
    return describe


def _replay_started(event: AuditEvent, details: dict) -> str:
    criteria = details.get("criteria") or {}
    message = criteria.get("message_id") if isinstance(criteria, dict) else None
    if message is not None:
        return _with_reason(f"Replayed message #{message}", details)
    total = details.get("total")
    count = f" of {total} message(s)" if isinstance(total, int) else ""
    return _with_reason(f"Started replay #{event.target_id}{count}", details)


def _replay_cancelled(event: AuditEvent, details: dict) -> str:
    return f"Cancelled replay #{event.target_id} at {details.get('done')}/{details.get('total')}"


def _replay_finished(event: AuditEvent, details: dict) -> str:
    return (f"Replay #{event.target_id} finished: {details.get('requeued')} of "
            f"{details.get('total')} message(s) re-queued")


def _replay_link(event: AuditEvent, details: dict) -> Link:
    criteria = details.get("criteria") or {}
    message = criteria.get("message_id") if isinstance(criteria, dict) else None
    if isinstance(message, int):
        return Link("pipeline.message", Permission.VIEW_PANELS, {"message_id": message})
    return Link("pipeline.replays", Permission.VIEW_PANELS, anchor=f"replay-{event.target_id}")


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _text(template: str) -> Callable[[AuditEvent, dict], str]:
    """A sentence from the target and the row's plain-text details."""
    def describe(event: AuditEvent, details: dict) -> str:
        fields = _Fields({k: v for k, v in details.items() if isinstance(v, str)})
        fields["target"] = event.target_id or "?"
        return template.format_map(fields)
    return describe


def _fixed(link: Link | None) -> Callable[[AuditEvent, dict], Link | None]:
    return lambda event, details: link


_USERS = Link("users.index", Permission.MANAGE_USERS)
_KEYS = Link("keys.status", Permission.MANAGE_KEYS)
_CARD_KEYS = Link("card_data_keys.index", Permission.MANAGE_KEYS)


@dataclass(frozen=True)
class Classification:
    kind: ChangeKind
    describe: Callable[[AuditEvent, dict], str]
    link: Callable[[AuditEvent, dict], Link | None]


# The feed, one line per audit action that changes how the system behaves.
CHANGES: dict[AuditAction, Classification] = {
    AuditAction.FLOW_SWITCH_DISABLE: Classification(
        ChangeKind.FLOW, _flow("off"), _fixed(Link("flows.index", Permission.VIEW_PANELS))),
    AuditAction.FLOW_SWITCH_ENABLE: Classification(
        ChangeKind.FLOW, _flow("on"), _fixed(Link("flows.index", Permission.VIEW_PANELS))),
    # Four-eyes requests: the approval itself is applied as a switch change (above).
    AuditAction.FLOW_CHANGE_REQUEST: Classification(
        ChangeKind.FLOW,
        lambda event, details: _with_reason(
            f"Asked to turn {_flow_name(event)} {'on' if details.get('enabled') else 'off'}"
            " (needs a second person)", details),
        _fixed(Link("flows.index", Permission.VIEW_PANELS))),
    AuditAction.FLOW_CHANGE_APPROVE: Classification(
        ChangeKind.FLOW, lambda event, details: f"Approved a change to {_flow_name(event)}",
        _fixed(Link("flows.index", Permission.VIEW_PANELS))),
    AuditAction.FLOW_CHANGE_REJECT: Classification(
        ChangeKind.FLOW, lambda event, details: f"Rejected a change to {_flow_name(event)}",
        _fixed(Link("flows.index", Permission.VIEW_PANELS))),
    AuditAction.AUTH_BREAK_GLASS_CREATE: Classification(
        ChangeKind.CREDENTIAL, _text("Created break-glass account {target}"), _fixed(_USERS)),
    AuditAction.AUTH_BREAK_GLASS_UNLOCK: Classification(
        ChangeKind.CREDENTIAL, _text("Unlocked break-glass account {target}"), _fixed(_USERS)),
    AuditAction.KEYS_CREDENTIAL_CREATE: Classification(
        ChangeKind.CREDENTIAL,
        lambda event, details: _with_reason(
            _text("Added {kind} {fingerprint} ({environment})")(event, details), details),
        _fixed(_KEYS)),
    AuditAction.KEYS_CREDENTIAL_ACTIVATE: Classification(
        ChangeKind.CREDENTIAL,
        lambda event, details: _with_reason(
            _text("Activated {kind} {fingerprint}")(event, details), details),
        _fixed(_KEYS)),
    AuditAction.KEYS_CREDENTIAL_SCHEDULE_RETIRE: Classification(
        ChangeKind.CREDENTIAL,
        lambda event, details: _with_reason(
            _text("Started retiring {kind} {fingerprint} (accepted until {retire_after})")(
                event, details), details),
        _fixed(_KEYS)),
    AuditAction.KEYS_CREDENTIAL_RETIRE: Classification(
        ChangeKind.CREDENTIAL,
        lambda event, details: _with_reason(
            _text("Retired {kind} {fingerprint}")(event, details), details),
        _fixed(_KEYS)),
    AuditAction.KEYS_CREDENTIAL_REVOKE: Classification(
        ChangeKind.CREDENTIAL,
        lambda event, details: _with_reason(
            _text("Revoked {kind} {fingerprint}")(event, details), details),
        _fixed(_KEYS)),
    AuditAction.DECISIONING_RULES_UPDATE: Classification(
        ChangeKind.CONFIG,
        lambda event, details: _with_reason(
            f"Saved decisioning rules version {event.target_id}", details),
        lambda event, details: Link("decisioning.rules", Permission.VIEW_PANELS,
                                    anchor=f"version-{event.target_id}")),
    AuditAction.DEPLOYMENT_ENVIRONMENT_RECORD: Classification(
        ChangeKind.CONFIG, _text("Recorded this database's environment: {environment}"),
        _fixed(None)),
    AuditAction.AUTH_USER_CREATE: Classification(
        ChangeKind.ACCESS, _text("User {target} created"), _fixed(_USERS)),
    AuditAction.AUTH_USER_DISABLE: Classification(
        ChangeKind.ACCESS, _text("Disabled user {target}"), _fixed(_USERS)),
    AuditAction.AUTH_USER_ENABLE: Classification(
        ChangeKind.ACCESS, _text("Enabled user {target}"), _fixed(_USERS)),
    AuditAction.AUTH_ROLES_CHANGE: Classification(
        ChangeKind.ACCESS, _text("Changed the roles of {target}"), _fixed(_USERS)),
    AuditAction.KEYS_CARD_DATA_GENERATE: Classification(
        ChangeKind.CREDENTIAL, _text("Generated card-data key {target}"), _fixed(_CARD_KEYS)),
    AuditAction.KEYS_CARD_DATA_ACTIVATE: Classification(
        ChangeKind.CREDENTIAL, _text("Activated card-data key {target}"), _fixed(_CARD_KEYS)),
    AuditAction.KEYS_CARD_DATA_RETIRE: Classification(
        ChangeKind.CREDENTIAL, _text("Retired card-data key {target}"), _fixed(_CARD_KEYS)),
    AuditAction.KEYS_CARD_DATA_REVOKE: Classification(
        ChangeKind.CREDENTIAL, _text("Revoked card-data key {target}"), _fixed(_CARD_KEYS)),
    # Four-eyes key requests: the approved action itself appears as its own line (above).
    AuditAction.KEYS_ACTION_REQUEST: Classification(
        ChangeKind.CREDENTIAL,
        lambda event, details: _with_reason(
            f"Asked: {details.get('summary', 'a key action')} (needs a second person)",
            details),
        _fixed(_KEYS)),
    AuditAction.KEYS_ACTION_APPROVE: Classification(
        ChangeKind.CREDENTIAL,
        lambda event, details: f"Approved: {details.get('summary', 'a key action')}",
        _fixed(_KEYS)),
    AuditAction.KEYS_ACTION_REJECT: Classification(
        ChangeKind.CREDENTIAL,
        lambda event, details: f"Rejected: {details.get('summary', 'a key action')}",
        _fixed(_KEYS)),
    # Silences a check's alerts for a while: exactly what to find when an alert never came.
    AuditAction.HEALTH_CHECK_SNOOZE: Classification(
        ChangeKind.CONFIG,
        lambda event, details: _with_reason(f"Snoozed health check {event.target_id}", details),
        _fixed(Link("checks.index", Permission.VIEW_PANELS))),
    AuditAction.PIPELINE_REPLAY_START: Classification(
        ChangeKind.REPLAY, _replay_started, _replay_link),
    AuditAction.PIPELINE_REPLAY_CANCEL: Classification(
        ChangeKind.REPLAY, _replay_cancelled, _replay_link),
    AuditAction.PIPELINE_REPLAY_COMPLETE: Classification(
        ChangeKind.REPLAY, _replay_finished, _replay_link),
}

# Audited, but not a change to look for during an incident: sign-ins, page views, exports,
# and effects the system produces by itself from traffic (their causes are in the feed).
NOT_CHANGES: frozenset[AuditAction] = frozenset({
    AuditAction.AUDIT_LOG_VIEW, AuditAction.AUDIT_LOG_EXPORT, AuditAction.AUDIT_CHAIN_VERIFY,
    AuditAction.AUDIT_LOG_ARCHIVE,
    AuditAction.AUDIT_CHECKPOINT_SIGN, AuditAction.DEMO_DATA_SEED,
    # Sandbox-only test traffic and its cards, like the demo seed.
    AuditAction.EVIDENCE_RECORDS_CREATE, AuditAction.EVIDENCE_RUN,
    AuditAction.AUTH_SESSION_LOGIN, AuditAction.AUTH_SESSION_LOGOUT,
    AuditAction.AUTH_SESSION_STEP_UP, AuditAction.AUTH_ACCESS_DENY,
    AuditAction.AUTH_BREAK_GLASS_LOGIN, AuditAction.AUTH_BREAK_GLASS_LOCK,
    AuditAction.KEYS_STATUS_VIEW, AuditAction.PIPELINE_MESSAGE_DEAD_LETTER,
    AuditAction.LEDGER_HOLDS_EXPIRE, AuditAction.AUTH_ANONYMOUS_DENIALS_RECORD,
    AuditAction.FLOW_CHANGE_CANCEL, AuditAction.FLOW_CHANGE_EXPIRE,
    AuditAction.KEYS_ACTION_CANCEL, AuditAction.KEYS_ACTION_EXPIRE,
    AuditAction.FLOW_SWITCH_REVERT_WARN, AuditAction.TRANSACTIONS_PARKED_POST,
    AuditAction.TRANSACTIONS_POSTING_RETRY, AuditAction.TRANSACTIONS_POSTING_ACCEPT,
    AuditAction.TRANSACTIONS_AUTHORIZATIONS_EXPIRE, AuditAction.TRANSACTIONS_ORPHANS_POST,
    AuditAction.CARDS_STATUS_REQUEST, AuditAction.CARDS_STATUS_SEND,
    AuditAction.CARDS_STATUS_RETRY, AuditAction.CARDS_BOOK_REFRESH, AuditAction.CARDS_ACCOUNT_LINK,
    AuditAction.CARDS_CARD_DATA_REVEAL,
    AuditAction.HEALTH_CHECK_RUN,
})


class Window(StrEnum):
    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"
    ALL = "all"

    @property
    def span(self) -> dt.timedelta | None:
        return WINDOW_SPANS[self]


WINDOW_SPANS = {Window.HOUR: dt.timedelta(hours=1), Window.DAY: dt.timedelta(hours=24),
                Window.WEEK: dt.timedelta(days=7), Window.MONTH: dt.timedelta(days=30),
                Window.ALL: None}


@dataclass(frozen=True)
class ChangeFilter:
    kind: ChangeKind | None = None
    since: dt.datetime | None = None
    before_seq: int | None = None

    def actions(self) -> list[str]:
        return sorted(action.value for action, rule in CHANGES.items()
                      if self.kind is None or rule.kind is self.kind)


def changes(session: Session, criteria: ChangeFilter, *, with_audit: bool,
            limit: int = PAGE_SIZE) -> list[Change]:
    """Newest first (audit sequence order), ``limit`` at most; keyset-paged by ``before_seq``.
    Uses the (action, seq) index: only the feed's actions are read, whatever the log's size."""
    query = select(AuditEvent).where(AuditEvent.action.in_(criteria.actions()),
                                     AuditEvent.outcome == Outcome.SUCCESS.value)
    if criteria.since is not None:
        query = query.where(AuditEvent.occurred_at >= criteria.since)
    if criteria.before_seq is not None:
        query = query.where(AuditEvent.seq < criteria.before_seq)
    events = session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit))
    return [_change(event, with_audit=with_audit) for event in events]


def _change(event: AuditEvent, *, with_audit: bool) -> Change:
    rule = CHANGES[AuditAction(event.action)]
    details = _details(event)
    return Change(seq=event.seq, at=event.occurred_at, kind=rule.kind,
                  actor_type=event.actor_type, actor_id=event.actor_id,
                  summary=rule.describe(event, details), link=rule.link(event, details),
                  details=event.details if with_audit else None)
