"""Send alert notifications: a JSON webhook (generic, Slack- or PagerDuty-shaped) and email
over SMTP. Called after the check run has committed; a notifier that fails is logged and
counted, never raised, so a broken mail relay cannot stop the checks themselves.

Payloads carry the check id, title, state, detail and environment: never a credential of ours
(the PagerDuty routing key is PagerDuty's own addressing, required in its body) and never the
webhook URL, which is itself a secret and is kept out of logs too.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.error
import urllib.request
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Any

from console.checks.alerts import Kind, Notification
from console.checks.settings import ChecksSettings, SmtpTarget, WebhookFormat, WebhookTarget

log = logging.getLogger(__name__)
TIMEOUT_S = 5.0
SOURCE = "finci-console"

_WORDS = {Kind.FAILING: "FAILING", Kind.REPEAT: "STILL FAILING", Kind.RECOVERED: "RECOVERED"}


def headline(note: Notification, environment: str) -> str:
    return f"[{environment}] {_WORDS[note.kind]}: {note.title} ({note.check_id})"


def payload(note: Notification, target: WebhookTarget, environment: str) -> dict[str, Any]:
    state = "ok" if note.kind is Kind.RECOVERED else "failing"
    generic = {"source": SOURCE, "environment": environment, "check": note.check_id,
               "title": note.title, "state": state, "event": note.kind.value,
               "detail": note.detail, "consecutive_failures": note.consecutive_failures,
               "at": note.at.isoformat()}
    if target.format is WebhookFormat.SLACK:
        return {"text": f"{headline(note, environment)}\n{note.detail}"}
    if target.format is WebhookFormat.PAGERDUTY:
        return {"routing_key": target.routing_key,
                "event_action": "resolve" if note.kind is Kind.RECOVERED else "trigger",
                # One incident per check and environment: repeats update it, recovery resolves.
                "dedup_key": f"{SOURCE}:{environment}:{note.check_id}",
                "payload": {"summary": headline(note, environment), "source": SOURCE,
                            "severity": "critical", "timestamp": note.at.isoformat(),
                            "custom_details": generic}}
    return generic


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args, **_kwargs):
        return None  # a redirect is an error: the payload goes to the configured URL or nowhere


# urllib rather than requests: urllib3 logs every request line at DEBUG, and the path of a Slack
# or PagerDuty URL is the credential.
_OPENER = urllib.request.build_opener(_NoRedirects)


def send_webhook(note: Notification, target: WebhookTarget, environment: str) -> None:
    body = json.dumps(payload(note, target, environment)).encode()
    request = urllib.request.Request(target.url, data=body, method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json"})
    # Scheme checked at start (https, or http to loopback outside live mode): see settings.
    try:
        with _OPENER.open(request, timeout=TIMEOUT_S) as response:  # nosec B310
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if status >= 300:
        raise RuntimeError(f"webhook answered HTTP {status}")


def email(note: Notification, target: SmtpTarget, environment: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = headline(note, environment)
    message["From"] = target.sender
    message["To"] = ", ".join(target.recipients)
    message.set_content(
        f"{headline(note, environment)}\n\n{note.detail}\n\n"
        f"Consecutive failures: {note.consecutive_failures}\nAt: {note.at.isoformat()}\n"
        "Open the console's Health page to snooze or run the check again.\n")
    return message


def send_email(note: Notification, target: SmtpTarget, environment: str) -> None:
    with smtplib.SMTP(target.host, target.port, timeout=target.timeout_s) as smtp:
        if target.starttls:
            smtp.starttls()
        if target.username and target.password:
            smtp.login(target.username, target.password)
        smtp.send_message(email(note, target, environment))


def deliver(notes: Iterable[Notification], policy: ChecksSettings, environment: str) -> int:
    """Send every notification through every configured notifier; the number that failed."""
    failed = 0
    for note in notes:
        channels = []
        if policy.webhook is not None:
            channels.append(("webhook", lambda n=note: send_webhook(n, policy.webhook,
                                                                    environment)))
        if policy.smtp is not None:
            channels.append(("email", lambda n=note: send_email(n, policy.smtp, environment)))
        if not channels:
            log.warning("health check %s is %s but no notifier is configured",
                        note.check_id, note.kind.value)
        for name, send in channels:
            try:
                send()
            except Exception as exc:  # a notifier's failure must never stop the checks
                failed += 1
                # The exception's type only: its text may contain the (secret) webhook URL.
                log.warning("health check %s: %s notification failed (%s)", note.check_id,
                            name, type(exc).__name__)
    return failed
