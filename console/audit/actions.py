"""Every auditable action, named ``area.subject.verb``, in one enum (DESIGN.md convention 4)."""

from enum import StrEnum


class AuditAction(StrEnum):
    # Deployment and audit itself
    DEPLOYMENT_ENVIRONMENT_RECORD = "system.environment.record"
    AUDIT_LOG_VIEW = "audit.log.view"
    AUDIT_LOG_EXPORT = "audit.log.export"
    AUDIT_CHAIN_VERIFY = "audit.chain.verify"
    AUDIT_CHECKPOINT_SIGN = "audit.checkpoint.sign"

    # Flow kill switches
    FLOW_SWITCH_ENABLE = "flows.switch.enable"
    FLOW_SWITCH_DISABLE = "flows.switch.disable"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class ActorType(StrEnum):
    USER = "user"
    BREAK_GLASS = "break_glass"
    SYSTEM = "system"
    CLI = "cli"
    ANONYMOUS = "anonymous"
