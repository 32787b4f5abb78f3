"""Every auditable action, named ``area.subject.verb``, in one enum (DESIGN.md convention 4)."""

from enum import StrEnum


class AuditAction(StrEnum):
    # Deployment and audit itself
    DEPLOYMENT_ENVIRONMENT_RECORD = "system.environment.record"
    AUDIT_LOG_VIEW = "audit.log.view"
    AUDIT_LOG_EXPORT = "audit.log.export"
    AUDIT_LOG_ARCHIVE = "audit.log.archive"
    AUDIT_CHAIN_VERIFY = "audit.chain.verify"
    AUDIT_CHECKPOINT_SIGN = "audit.checkpoint.sign"
    DEMO_DATA_SEED = "system.demo_data.seed"
    # Go-live evidence runs (console.evidence): the step cards it creates, and each run's result
    EVIDENCE_RECORDS_CREATE = "system.evidence_records.create"
    EVIDENCE_RUN = "system.evidence.run"

    # Identity and access (console.auth)
    AUTH_SESSION_LOGIN = "auth.session.login"
    AUTH_SESSION_LOGOUT = "auth.session.logout"
    AUTH_SESSION_STEP_UP = "auth.session.step_up"
    AUTH_ACCESS_DENY = "auth.access.deny"
    # Anonymous API calls and writes refused since the previous run, counted (console.auth.denials)
    AUTH_ANONYMOUS_DENIALS_RECORD = "auth.anonymous_denials.record"
    AUTH_USER_CREATE = "auth.user.create"
    AUTH_USER_DISABLE = "auth.user.disable"
    AUTH_USER_ENABLE = "auth.user.enable"
    AUTH_ROLES_CHANGE = "auth.roles.change"
    AUTH_BREAK_GLASS_CREATE = "auth.break_glass.create"
    AUTH_BREAK_GLASS_LOGIN = "auth.break_glass.login"
    AUTH_BREAK_GLASS_LOCK = "auth.break_glass.lock"
    AUTH_BREAK_GLASS_UNLOCK = "auth.break_glass.unlock"

    # Credentials and keys (console.keys)
    KEYS_STATUS_VIEW = "keys.status.view"
    # The inventory's lifecycle (console.keys.inventory): one action per transition
    KEYS_CREDENTIAL_CREATE = "keys.credential.create"
    KEYS_CREDENTIAL_ACTIVATE = "keys.credential.activate"
    KEYS_CREDENTIAL_SCHEDULE_RETIRE = "keys.credential.schedule_retire"
    KEYS_CREDENTIAL_RETIRE = "keys.credential.retire"
    KEYS_CREDENTIAL_REVOKE = "keys.credential.revoke"
    # Card-data key pairs (console.keys.card_data_keys) and reveals (console.keys.reveal)
    KEYS_CARD_DATA_GENERATE = "keys.card_data.generate"
    KEYS_CARD_DATA_ACTIVATE = "keys.card_data.activate"
    KEYS_CARD_DATA_RETIRE = "keys.card_data.retire"
    KEYS_CARD_DATA_REVOKE = "keys.card_data.revoke"
    # Four-eyes key and credential actions (console.keys.approvals): the approved action is
    # audited by its own service, with the approver as actor.
    KEYS_ACTION_REQUEST = "keys.action.request"
    KEYS_ACTION_APPROVE = "keys.action.approve"
    KEYS_ACTION_REJECT = "keys.action.reject"
    KEYS_ACTION_CANCEL = "keys.action.cancel"
    KEYS_ACTION_EXPIRE = "keys.action.expire"
    CARDS_CARD_DATA_REVEAL = "cards.card_data.reveal"

    # Flow kill switches
    FLOW_SWITCH_ENABLE = "flows.switch.enable"
    FLOW_SWITCH_DISABLE = "flows.switch.disable"
    FLOW_SWITCH_REVERT_WARN = "flows.switch.revert_warn"
    # Four-eyes changes (FLOWS_REQUIRE_APPROVAL): requested, then decided by another person
    FLOW_CHANGE_REQUEST = "flows.change.request"
    FLOW_CHANGE_APPROVE = "flows.change.approve"
    FLOW_CHANGE_REJECT = "flows.change.reject"
    FLOW_CHANGE_CANCEL = "flows.change.cancel"
    FLOW_CHANGE_EXPIRE = "flows.change.expire"

    # Event pipeline (console.pipeline)
    PIPELINE_REPLAY_START = "pipeline.replay.start"
    PIPELINE_REPLAY_CANCEL = "pipeline.replay.cancel"
    PIPELINE_REPLAY_COMPLETE = "pipeline.replay.complete"
    PIPELINE_MESSAGE_DEAD_LETTER = "pipeline.message.dead_letter"

    # Authorization decisioning (console.decisioning)
    DECISIONING_RULES_UPDATE = "decisioning.rules.update"
    LEDGER_HOLDS_EXPIRE = "ledger.holds.expire"

    # Transaction lifecycle and card lifecycle (console.transactions, console.cards)
    TRANSACTIONS_POSTING_RETRY = "transactions.posting.retry"
    TRANSACTIONS_POSTING_ACCEPT = "transactions.posting.accept"
    TRANSACTIONS_AUTHORIZATIONS_EXPIRE = "transactions.authorizations.expire"
    TRANSACTIONS_ORPHANS_POST = "transactions.orphans.post"
    TRANSACTIONS_PARKED_POST = "transactions.parked.post"  # held back by the ledger switch
    CARDS_STATUS_REQUEST = "cards.status.request"
    CARDS_STATUS_SEND = "cards.status.send"
    CARDS_STATUS_RETRY = "cards.status.retry"
    CARDS_BOOK_REFRESH = "cards.book.refresh"
    CARDS_ACCOUNT_LINK = "cards.account.link"

    # Scheduled health checks (console.checks): snoozing alerts, running a check by hand
    HEALTH_CHECK_SNOOZE = "health.check.snooze"
    HEALTH_CHECK_RUN = "health.check.run"


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
