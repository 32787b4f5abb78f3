"""A tiny stand-in for the console's webhook ingress, for the simulator's own tests.

It checks what FINCI.md B says the console must check (the Standard Webhooks signature with
``console.finci.webhook_signature.verify``, then the body with
``console.finci.payload.parse_message``), answers authorization requests per a policy, and
records every delivery so tests can look at exactly what the simulator sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

from console.finci import contract
from console.finci.payload import PayloadRejected, WebhookMessage, parse_message
from console.finci.webhook_signature import RejectReason, SignatureRejected, WebhookSecret, verify


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = contract.AUTHORIZATION_APPROVE_BODY
    delay_s: float = 0.0
    headers: dict = field(default_factory=dict)


APPROVE = Reply()
DECLINE = Reply(body=contract.AUTHORIZATION_DECLINE_BODY)
STORED = Reply(body=b"{}")


@dataclass(frozen=True)
class Received:
    webhook_id: str | None
    timestamp: str | None
    signature: str | None
    body: bytes
    status: int
    message: WebhookMessage | None
    at: float

    @property
    def document(self) -> dict:
        return json.loads(self.body)


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class Receiver:
    """``policy(message) -> Reply`` answers authorization requests (default: approve);
    ``script`` is a list of Replies used, in order, for every other delivery (then 200)."""

    def __init__(self, secret: WebhookSecret,
                 policy: Callable[[WebhookMessage], Reply] | None = None):
        self.secret = secret
        self.policy = policy or (lambda _m: APPROVE)
        self.script: list[Reply] = []
        self.received: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        app = Flask(__name__)
        app.add_url_rule("/webhooks/finci", view_func=self._handle, methods=["POST"])
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _record(self, status, message=None) -> None:
        h = request.headers
        with self._lock:
            self.received.append(Received(
                h.get(contract.HEADER_WEBHOOK_ID), h.get(contract.HEADER_WEBHOOK_TIMESTAMP),
                h.get(contract.HEADER_WEBHOOK_SIGNATURE), request.get_data(), status, message,
                time.monotonic()))

    def _handle(self) -> Response:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._answer()
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self) -> Response:
        body = request.get_data()
        h = request.headers
        try:
            verify([self.secret], h.get(contract.HEADER_WEBHOOK_ID),
                   h.get(contract.HEADER_WEBHOOK_TIMESTAMP),
                   h.get(contract.HEADER_WEBHOOK_SIGNATURE), body, time.time())
        except SignatureRejected as exc:
            status = 413 if exc.reason is RejectReason.BODY_TOO_LARGE else 401
            self._record(status)
            return Response(status=status)
        try:
            message = parse_message(body)
        except PayloadRejected:
            self._record(400)
            return Response(status=400)
        if message.is_authorization_request:
            reply = self.policy(message)
        else:
            with self._lock:
                reply = self.script.pop(0) if self.script else STORED
        if reply.delay_s:
            time.sleep(reply.delay_s)
        self._record(reply.status, message)
        return Response(reply.body, status=reply.status, headers=reply.headers,
                        mimetype="application/json")

    # --- views for assertions ---------------------------------------------------------------

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.message is not None]

    def messages(self) -> list[WebhookMessage]:
        return [r.message for r in self.accepted()]
