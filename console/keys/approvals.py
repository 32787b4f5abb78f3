"""Key and credential actions through one door, with a second approver where configured.

Every create, rotate, retire and revoke of a webhook secret, a card-data key or an inventory
credential, from the keys pages and from ``flask --app wsgi keys ...``, goes through
:func:`perform`. With ``KEY_ACTIONS_REQUIRE_SECOND_APPROVER`` off (a sandbox, the demo) it acts at
once; with it on (the production default) it checks what it can now (the credential or key
exists here, the change is allowed, the reason is given) and files a request, which a different
person holding MANAGE_KEYS approves (the action then runs once, as the approver, with the
requester in the request's audit row) or rejects. The rules of four eyes are
``console.four_eyes``, shared with the kill switches.

No secret value is ever written to the request: a new webhook secret is staged in the secret
store when it is asked for (``webhook/<environment>/<fingerprint>``, the name it would get
anyway) and the request names it; until approved it is in no inventory row, so ingress never
trusts it. A rejected, cancelled or expired request deletes what it staged (a store that cannot
delete it leaves it, untrusted, for the next rotation to overwrite).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from console import four_eyes
from console.audit import Actor, AuditAction, Target
from console.db import utcnow
from console.finci import contract
from console.four_eyes import Decision, RequestStatus
from console.keys import card_data_keys, inventory
from console.keys.inventory import ALLOWED, InventoryError, State
from console.keys.models import KeyActionRequest
from console.secrets.store import SecretStore, SecretStoreError
from console.security.permissions import Permission
from console.settings import Settings

__all__ = ["Decision", "KeyAction", "KeyActionRefused", "KeyContext", "Performed", "decide",
           "expire_due", "pending", "perform"]


class KeyAction(StrEnum):
    WEBHOOK_SECRET_ADD = "webhook_secret.add"  # noqa: S105 - an action name, not a secret
    RECORD_CONFIGURED = "inventory.record_configured"
    CREDENTIAL_ACTIVATE = "credential.activate"
    CREDENTIAL_SCHEDULE_RETIRE = "credential.schedule_retire"
    CREDENTIAL_RETIRE = "credential.retire"
    CREDENTIAL_REVOKE = "credential.revoke"
    CARD_DATA_GENERATE = "card_data.generate"
    CARD_DATA_ACTIVATE = "card_data.activate"
    CARD_DATA_RETIRE = "card_data.retire"
    CARD_DATA_REVOKE = "card_data.revoke"


CREDENTIAL_STATES = {KeyAction.CREDENTIAL_ACTIVATE: State.ACTIVE,
                     KeyAction.CREDENTIAL_SCHEDULE_RETIRE: State.RETIRING,
                     KeyAction.CREDENTIAL_RETIRE: State.RETIRED,
                     KeyAction.CREDENTIAL_REVOKE: State.REVOKED}
VERBS = {KeyAction.WEBHOOK_SECRET_ADD: "Add webhook secret",
         KeyAction.RECORD_CONFIGURED: "Record the configured credentials",
         KeyAction.CREDENTIAL_ACTIVATE: "Activate", KeyAction.CREDENTIAL_RETIRE: "Retire",
         KeyAction.CREDENTIAL_SCHEDULE_RETIRE: "Start retiring",
         KeyAction.CREDENTIAL_REVOKE: "Revoke",
         KeyAction.CARD_DATA_GENERATE: "Generate a card-data key pair",
         KeyAction.CARD_DATA_ACTIVATE: "Activate card-data key",
         KeyAction.CARD_DATA_RETIRE: "Retire card-data key",
         KeyAction.CARD_DATA_REVOKE: "Revoke card-data key"}
# The only keys ``params`` may hold: never a secret value.
_PARAMS = frozenset({"credential_id", "hours", "stored_as", "staged", "fingerprint",
                     "overlap_hours", "kid", "bits"})


class KeyActionRefused(ValueError):
    """A refused request or decision; the message is safe to show (422, exit 1)."""


@dataclass(frozen=True)
class KeyContext:
    """What running a key action needs besides the session: the settings, the secret store and
    the TLS files (recording the configured credentials)."""

    settings: Settings
    store: SecretStore | None
    tls: Any = None

    @property
    def environment(self) -> str:
        return self.settings.environment.value

    @property
    def four_eyes(self) -> bool:
        return self.settings.secrets.require_second_approver

    @classmethod
    def of(cls, app) -> KeyContext:
        from console.keys.services import TlsFiles
        from console.secrets.factory import app_store

        return cls(app.extensions["settings"], app_store(app), TlsFiles.from_env())


@dataclass(frozen=True)
class Performed:
    """Exactly one is set: the action ran (``result``: what it returns) or a request waits."""
    result: Any = None
    request: KeyActionRequest | None = None


# --- running an action -----------------------------------------------------------------------

def _credential(session: Session, ctx: KeyContext, params: dict):
    return inventory.get(session, int(params["credential_id"]), ctx.environment)


def _run(session: Session, actor: Actor, ctx: KeyContext, action: KeyAction, params: dict,
         reason: str, at: dt.datetime) -> Any:
    """The action itself, through the service that owns it (which validates and audits it)."""
    from console.keys.webhook_secrets import add_webhook_secret

    environment = ctx.environment
    if action is KeyAction.WEBHOOK_SECRET_ADD:
        return add_webhook_secret(
            session, ctx.store, actor, value=params.get("value"),
            stored_as=params.get("stored_as"), environment=environment,
            configured=ctx.settings.ingress.secrets, at=at, reason=reason,
            overlap=dt.timedelta(hours=params["overlap_hours"]))
    if action is KeyAction.RECORD_CONFIGURED:
        from console.keys.configured import record_configured
        from console.keys.services import TlsFiles

        return record_configured(session, actor, ctx.settings, ctx.tls or TlsFiles(), at=at)
    if action in CREDENTIAL_STATES:
        credential = _credential(session, ctx, params)
        extra = ({"retire_after": at + dt.timedelta(hours=params["hours"])}
                 if action is KeyAction.CREDENTIAL_SCHEDULE_RETIRE else {})
        return inventory.transition(session, actor, credential, CREDENTIAL_STATES[action],
                                    environment=environment, at=at, reason=reason, **extra)
    store = ctx.store
    if action is KeyAction.CARD_DATA_GENERATE:
        return card_data_keys.generate(session, card_data_keys.require_store(store),
                                       environment=environment,
                                       actor=actor, bits=params["bits"], at=at)
    if action is KeyAction.CARD_DATA_ACTIVATE:
        return card_data_keys.activate(session, params["kid"], environment=environment,
                                       actor=actor, at=at)
    if action is KeyAction.CARD_DATA_RETIRE:
        return card_data_keys.retire(session, params["kid"], environment=environment,
                                     actor=actor, reason=reason, at=at)
    return card_data_keys.revoke(session, card_data_keys.require_store(store), params["kid"],
                                 environment=environment, actor=actor, reason=reason, at=at)




# --- checking and describing a request before it is filed ------------------------------------

def _prepare(session: Session, ctx: KeyContext, action: KeyAction,
             params: dict) -> tuple[str, str, dict]:
    """(subject, summary, params to keep) for a request, or the refusal the action itself would
    give now. A new webhook secret value is staged in the store here, never kept in ``params``."""
    from console.keys.inventory_view import LABELS
    from console.keys.webhook_secrets import check_new, read_stored, store_name

    environment = ctx.environment
    if action is KeyAction.WEBHOOK_SECRET_ADD:
        store = ctx.store
        if store is None:
            raise InventoryError("no secret store is configured (SECRETS_BACKEND)")
        value, stored_as = params.get("value"), params.get("stored_as")
        if (value is None) == (stored_as is None):
            raise InventoryError("give either the new secret or the store name it is kept under")
        staged = stored_as is None
        secret = check_new(session, value if staged else read_stored(store, stored_as,
                                                                      environment), environment)
        if staged:
            stored_as = store_name(environment, secret.fingerprint)
            try:
                store.put(stored_as, secret.export().encode("ascii"))
            except SecretStoreError as exc:
                raise InventoryError(f"the {store.kind} secret store cannot stage the new "
                                     f"secret: {exc} (then name the stored secret "
                                     "instead)") from None
        kept = {"stored_as": stored_as, "staged": staged, "fingerprint": secret.fingerprint,
                "overlap_hours": params["overlap_hours"]}
        return (f"webhook_secret:{environment}",
                f"{VERBS[action]} {secret.fingerprint} (the others retire after "
                f"{params['overlap_hours']} h)", kept)
    if action is KeyAction.RECORD_CONFIGURED:
        return f"inventory:{environment}", VERBS[action], {}
    if action in CREDENTIAL_STATES:
        credential = _credential(session, ctx, params)
        to = CREDENTIAL_STATES[action]
        if to not in ALLOWED[State(credential.status)]:
            raise inventory.TransitionRefused(
                f"{credential.kind} {credential.fingerprint} is {credential.status} and "
                f"cannot become {to.value}")
        kept = {"credential_id": credential.id}
        after = ""
        if action is KeyAction.CREDENTIAL_SCHEDULE_RETIRE:
            kept["hours"] = params["hours"]
            after = f" (accepted {params['hours']} h more once approved)"
        label = LABELS.get(credential.kind, credential.kind)
        return (f"credential:{credential.id}",
                f"{VERBS[action]} {label.lower()} {credential.fingerprint} "
                f"(#{credential.id}){after}", kept)
    if action is KeyAction.CARD_DATA_GENERATE:
        bits = params["bits"]
        if not isinstance(bits, int) or not (contract.CARD_DATA_KEY_MIN_BITS
                                             <= bits <= card_data_keys.MAX_BITS):
            raise card_data_keys.CardDataKeyError(
                f"key size must be {contract.CARD_DATA_KEY_MIN_BITS}.."
                f"{card_data_keys.MAX_BITS} bits")
        card_data_keys.require_store(ctx.store)
        return (f"card_data:{environment}:generate", f"{VERBS[action]} (RSA {bits})",
                {"bits": bits})
    key = card_data_keys.get_key(session, params["kid"], environment)
    if action is KeyAction.CARD_DATA_ACTIVATE and key.status != "pending":
        raise card_data_keys.CardDataKeyError(f"key {key.kid} is {key.status}: only a pending "
                                              "key can be activated")
    if action is KeyAction.CARD_DATA_RETIRE and key.status not in ("pending", "active"):
        raise card_data_keys.CardDataKeyError(f"key {key.kid} is {key.status} already")
    if action is KeyAction.CARD_DATA_REVOKE and key.status == "revoked":
        raise card_data_keys.CardDataKeyError(f"key {key.kid} is revoked already")
    return f"card_data_key:{key.kid}", f"{VERBS[action]} {key.kid}", {"kid": key.kid}


def _card_reason(action: KeyAction, reason: str) -> None:
    # Card-data retire and revoke ask for more than a word (card_data_keys.REASON_MIN): the same
    # rule when they are asked for as when they are done.
    if action in (KeyAction.CARD_DATA_RETIRE, KeyAction.CARD_DATA_REVOKE):
        card_data_keys._reason(reason)


# --- the four-eyes kind ----------------------------------------------------------------------

def _params(request: KeyActionRequest) -> dict:
    return json.loads(request.params or "{}")


def _target(request: KeyActionRequest) -> Target:
    kind, _, name = request.subject.partition(":")
    return Target(kind, name)


def _details(request: KeyActionRequest) -> dict:
    return {"action": request.action, "summary": request.summary, "reason": request.reason,
            "environment": request.environment, **_params(request)}


def _kind(ctx: KeyContext | None) -> four_eyes.RequestKind:
    def apply(session: Session, actor: Actor, request: KeyActionRequest, now: dt.datetime):
        if ctx is None or request.environment != ctx.environment:
            raise KeyActionRefused(f"key request #{request.id} is for {request.environment}")
        try:
            return _run(session, actor, ctx, KeyAction(request.action), _params(request),
                        request.reason, now)
        except (InventoryError, card_data_keys.CardDataKeyError, SecretStoreError) as error:
            raise KeyActionRefused(f"key request #{request.id} cannot be carried out now: "
                                   f"{error}") from None

    def closed(session: Session, request: KeyActionRequest, status: str) -> None:
        params = _params(request)
        if ctx is not None and ctx.store is not None and params.get("staged"):
            # Never trusted without an inventory row; the next rotation overwrites it.
            with contextlib.suppress(SecretStoreError):
                ctx.store.delete(params["stored_as"])

    return four_eyes.RequestKind(
        model=KeyActionRequest, subject="subject", permission=Permission.MANAGE_KEYS,
        refused=KeyActionRefused,
        audit={"request": AuditAction.KEYS_ACTION_REQUEST,
               RequestStatus.APPROVED: AuditAction.KEYS_ACTION_APPROVE,
               RequestStatus.REJECTED: AuditAction.KEYS_ACTION_REJECT,
               RequestStatus.CANCELLED: AuditAction.KEYS_ACTION_CANCEL,
               RequestStatus.EXPIRED: AuditAction.KEYS_ACTION_EXPIRE},
        target=_target, details=_details, apply=apply, closed=closed, noun="key request")


# --- the entry points ------------------------------------------------------------------------

def perform(session: Session, actor: Actor, ctx: KeyContext, action: KeyAction, *,
            reason: str, at: dt.datetime | None = None, **params: Any) -> Performed:
    """Do ``action`` now, or (four eyes on) file it for a second person.

    ``params``: ``value`` or ``stored_as`` and ``overlap_hours`` (webhook secret), or
    ``credential_id`` (and ``hours`` to start retiring), or ``kid``, or ``bits``. Refusals are
    the owning service's own (InventoryError, CardDataKeyError, SecretStoreError) or
    KeyActionRefused (another request waits, no reason)."""
    action = KeyAction(action)
    at = at or utcnow()
    if not ctx.four_eyes:
        return Performed(result=_run(session, actor, ctx, action, params, reason, at))
    reason = four_eyes.check_reason(reason, KeyActionRefused)
    _card_reason(action, reason)
    subject, summary, kept = _prepare(session, ctx, action, params)
    assert set(kept) <= _PARAMS  # noqa: S101 - a programming error, never input
    request = KeyActionRequest(action=action.value, subject=subject,
                               environment=ctx.environment, params=json.dumps(kept),
                               summary=summary[:300], reason=reason)
    try:
        request = four_eyes.file(session, actor, _kind(ctx), request,
                                 minutes=ctx.settings.secrets.approval_minutes, now=at,
                                 describe=subject)
    except KeyActionRefused:
        # Another request waits: drop what was staged for this one, unless that request
        # staged the very same secret (the same name).
        if kept.get("staged") and not any(
                _params(other).get("stored_as") == kept["stored_as"]
                for other in pending(session, ctx.environment, at)):
            _kind(ctx).closed(session, request, RequestStatus.CANCELLED)
        raise
    return Performed(request=request)


def decide(session: Session, actor: Actor, ctx: KeyContext, request_id: int,
           decision: Decision, *, now: dt.datetime | None = None) -> four_eyes.Decided:
    """Approve (runs the action once, as ``actor``), reject, or cancel (requester only)."""
    return four_eyes.decide(session, actor, _kind(ctx), request_id, Decision(decision), now=now)


def pending(session: Session, environment: str,
            now: dt.datetime | None = None) -> list[KeyActionRequest]:
    return four_eyes.pending(session, _kind(None), now, environment=str(environment))


def expire_due(session: Session, now: dt.datetime | None = None,
               ctx: KeyContext | None = None) -> list[int]:
    """Scheduled: pending key requests past their expiry become expired (audited); with ``ctx``
    (its secret store), what they staged is deleted."""
    return four_eyes.expire_due(session, _kind(ctx), now)


def describe(result: Any) -> str:
    """One line for what an action returned (a credential, a key, or a list)."""
    if isinstance(result, list):
        return f"recorded {len(result)} configured credential(s)" if result else \
            "nothing new to record"
    if hasattr(result, "kid"):
        return f"card-data key {result.kid} is {result.status}"
    return f"{result.kind} {result.fingerprint} is now {result.status}"

