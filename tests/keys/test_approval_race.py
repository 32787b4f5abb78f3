"""Two admins approve the same key request at the same moment, each in their own transaction
on PostgreSQL: the action is carried out once, the loser is refused, and the audit log shows one
approval (console.four_eyes closes a request with one conditional UPDATE)."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from sqlalchemy import func, select

from console.audit import Actor
from console.audit.models import AuditEvent
from console.db import Database, make_engine, utcnow
from console.four_eyes import Decision
from console.keys import approvals, inventory
from console.keys.approvals import KeyAction, KeyActionRefused, KeyContext
from console.keys.inventory import Kind
from console.keys.models import CredentialEvent
from console.secrets.memory import MemorySecretStore
from console.security.permissions import Role
from tests.keys.conftest import ingress
from tests.support.console_users import add_console_user

pytestmark = pytest.mark.postgres_only
ROUNDS = 5


@pytest.fixture
def backend():
    return "postgresql"


def _race(database: Database, ctx: KeyContext, request_id: int, admins) -> dict[str, str]:
    """Each admin approves in a thread and session of their own, released together."""
    barrier = threading.Barrier(len(admins))
    outcomes: dict[str, str] = {}

    def approve(who: str) -> None:
        session = database.session()
        try:
            barrier.wait(timeout=10)
            approvals.decide(session, Actor.cli(who), ctx, request_id, Decision.APPROVE,
                             now=utcnow())
            session.commit()
            outcomes[who] = "approved"
        except KeyActionRefused as refused:
            session.rollback()
            outcomes[who] = f"refused: {refused}"
        finally:
            session.close()

    threads = [threading.Thread(target=approve, args=(who,)) for who in admins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_racing_approvals_carry_a_revoke_out_once(db_factory, settings):
    secrets = dataclasses.replace(settings.secrets, require_second_approver=True)
    ctx = KeyContext(settings.replace(secrets=secrets, ingress=ingress()), MemorySecretStore())
    database = Database(make_engine(db_factory.fresh(), pool_size=4))
    try:
        with database.transaction() as session:
            for name in ("bob", "carol"):
                add_console_user(session, name, Role.ADMIN)
        for round_ in range(ROUNDS):
            now = utcnow()
            with database.transaction() as session:
                credential = inventory.create(
                    session, Actor.cli("anna"), kind=Kind.FINCI_API_TOKEN, name="token",
                    environment="sandbox", fingerprint=f"race{round_:012d}", at=now,
                    reason="seed", activate=True)
                request = approvals.perform(session, Actor.cli("anna"), ctx,
                                            KeyAction.CREDENTIAL_REVOKE, reason="CHG-7 leak",
                                            at=now, credential_id=credential.id).request
            outcomes = _race(database, ctx, request.id, ("bob", "carol"))
            # The loser is stopped by the request's own state, not by the revoke failing late.
            assert sorted(outcomes.values()) == [
                "approved", f"refused: key request #{request.id} is already approved"], outcomes
            with database.transaction() as session:
                revocations = session.scalar(select(func.count()).select_from(CredentialEvent)
                                             .where(CredentialEvent.credential_id == credential.id,
                                                    CredentialEvent.to_status == "revoked"))
                assert revocations == 1
                approvals_ = session.scalar(select(func.count()).select_from(AuditEvent).where(
                    AuditEvent.action == "keys.action.approve",
                    AuditEvent.target_id == str(request.id)))
                assert approvals_ == 1
    finally:
        database.dispose()
