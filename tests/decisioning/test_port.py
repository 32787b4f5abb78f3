"""The ingress's decider: settings of the app at hand, reasons the ingress can store."""

from __future__ import annotations

from console.decisioning import port
from console.decisioning.models import Reason
from console.decisioning.services import Decision
from console.decisioning.settings import AnswerStatus, DecisioningMode, DecisioningSettings
from console.ingress import decisioning_port


def test_creating_the_app_registers_the_decider(app):
    assert decisioning_port.registered() is port.answer_authorization


def test_the_settings_of_the_app_handling_the_request_apply(app, settings):
    finci = settings.replace(decisioning=DecisioningSettings(mode=DecisioningMode.FINCI))
    app.extensions["settings"] = finci
    with app.app_context():
        assert port.current_settings().mode is DecisioningMode.FINCI


def test_outside_any_app_the_last_installed_settings_apply(app):
    assert port.current_settings() == app.extensions["settings"].decisioning


def test_reasons_say_how_the_answer_was_reached():
    plain = Decision("a", AnswerStatus.SUCCESS, Reason.APPROVED)
    fallback = Decision("a", AnswerStatus.ERROR, Reason.BUDGET_EXCEEDED, default_used=True)
    repeat = Decision("a", AnswerStatus.ERROR, Reason.VELOCITY, repeated=True)
    assert port.reason_text(plain) == "approved"
    assert port.reason_text(fallback) == "budget_exceeded (safe default)"
    assert port.reason_text(repeat) == "velocity (repeat: first answer)"
