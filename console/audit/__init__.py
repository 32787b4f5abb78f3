"""Append-only, hash-chained audit log (PCI DSS 10.2): record(), verify(), query and export."""

from console.audit.actions import AuditAction, Outcome
from console.audit.services import Actor, Target, record

__all__ = ["Actor", "AuditAction", "Outcome", "Target", "record"]
