"""What the overview shows about the deployment itself."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit.models import AuditEvent
from console.deployment import Deployment


@dataclass(frozen=True)
class DeploymentStatus:
    environment: str | None
    initialised_at: object
    audit_events: int
    last_audit_at: object


def deployment_status(session: Session) -> DeploymentStatus:
    deployment = session.get(Deployment, 1)
    count, last = session.execute(
        select(func.count(AuditEvent.seq), func.max(AuditEvent.occurred_at))).one()
    return DeploymentStatus(
        environment=deployment.environment if deployment else None,
        initialised_at=deployment.initialised_at if deployment else None,
        audit_events=count,
        last_audit_at=last,
    )
