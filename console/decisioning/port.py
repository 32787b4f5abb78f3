"""Wiring: the ingress's decisioning port, the worker's authorization handler, the console pages.

``init_app`` is called once by ``create_app``. The port and the handler are process-wide
registrations, so they read the decisioning settings of the app handling the current request
(or job), falling back to those of the last app created in this process.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, has_app_context
from sqlalchemy.orm import Session

from console.decisioning.services import Decision, decide
from console.decisioning.settings import DecisioningSettings
from console.finci.payload import WebhookMessage
from console.ingress import decisioning_port

log = logging.getLogger(__name__)

_installed: DecisioningSettings | None = None


def current_settings() -> DecisioningSettings:
    if has_app_context():
        settings = current_app.extensions.get("settings")
        if settings is not None:
            return settings.decisioning
    if _installed is None:
        log.warning("decisioning used outside any app: default decisioning settings apply")
        return DecisioningSettings()
    return _installed


def reason_text(decision: Decision) -> str:
    """What the ingress stores on the message row: our reason code and how it was reached."""
    text = decision.reason.value
    if decision.default_used:
        text += " (safe default)"
    if decision.repeated:
        text += " (repeat: first answer)"
    return text


def answer_authorization(session: Session, message: WebhookMessage,
                         arrived: float | None = None) -> decisioning_port.Answer:
    """The decider the ingress calls for every authorization request."""
    decision = decide(session, message, current_settings(), arrived=arrived)
    return decisioning_port.Answer(approve=decision.approve, reason=reason_text(decision))


def init_app(app: Flask, settings) -> None:
    global _installed
    _installed = settings.decisioning
    decisioning_port.register(answer_authorization)
    # The worker also loads it through console.pipeline.handlers.HANDLER_MODULES; importing it
    # here registers it in every process that builds the app.
    try:
        from console.decisioning import handlers  # noqa: F401
    except ModuleNotFoundError as missing:  # a deployment without the pipeline package
        if missing.name != "console.pipeline":
            raise
    from console.settings import Serve

    if settings.serve in (Serve.ALL, Serve.CONSOLE):
        from console.decisioning.routes import bp

        app.register_blueprint(bp)
