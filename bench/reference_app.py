"""The references the ingest benchmark compares against: the least a webhook endpoint can do.

One route that verifies the Standard Webhooks HMAC over the raw body and does one INSERT … ON
CONFLICT DO NOTHING plus COMMIT (no source checks, rate limit, parsing, validation, masking,
deduplication or delivery record), served two ways with the same gunicorn config file:

- ``create_console_app()``: inside the console app itself, so every hook the console runs on
  every response (request ids, CSP and security headers, default-deny permissions, CSRF
  exemption, error handlers) is paid by both sides: the ratio isolates what the ingress design
  costs; printed as a second figure.
- ``create_app()``: a bare Flask app with nothing else: the floor, the reference the ingest
  target (ingress >= 0.8x) is checked against.
"""

from __future__ import annotations

import json
import time

from flask import Flask, Response, request
from sqlalchemy import text

from console.db import make_engine
from console.finci.webhook_signature import SignatureRejected, verify
from console.settings import Settings

TABLE = "bench_reference_inbox"
CREATE = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    id BIGSERIAL PRIMARY KEY, webhook_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
INSERT = text("INSERT INTO bench_reference_inbox (webhook_id, body) VALUES (:id, :body) "
              "ON CONFLICT DO NOTHING")
OK = json.dumps({"status": "success"}).encode()


def _reference_view(engine, secrets):
    def receive():
        body = request.get_data(cache=False)
        try:
            verify(secrets, request.headers.get("webhook-id"),
                   request.headers.get("webhook-timestamp"),
                   request.headers.get("webhook-signature"), body, time.time())
        except SignatureRejected:
            return Response(b'{"status": "error"}', status=401, mimetype="application/json")
        with engine.begin() as connection:
            connection.execute(INSERT, {"id": request.headers["webhook-id"],
                                        "body": body.decode("utf-8", "replace")})
        return Response(OK, status=200, mimetype="application/json")

    return receive


def create_app() -> Flask:
    """A bare Flask app: ``gunicorn 'bench.reference_app:create_app()'``."""
    settings = Settings.from_env()
    engine = make_engine(settings.database_url, connect_timeout_s=settings.db_connect_timeout_s,
                         pool_timeout_s=settings.db_pool_timeout_s,
                         pool_size=settings.db_pool_size)
    app = Flask(__name__)
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
    app.add_url_rule("/webhooks/finci", "receive",
                     _reference_view(engine, settings.ingress.secrets), methods=["POST"])
    return app


def create_console_app() -> Flask:
    """The console app exactly as ``wsgi:app`` builds it, plus ``POST /bench/reference``: the
    minimal endpoint with every console hook around it (request ids, security headers, default
    deny, CSRF exemption, error handlers). The endpoint is named ``ingress.*`` so the console
    treats it as machine traffic like the real ingress."""
    from console import create_app as create_console
    from console.security.permissions import public

    settings = Settings.from_env()
    app = create_console(settings)
    engine = app.extensions["database"].engine
    app.add_url_rule("/bench/reference", "ingress.bench_reference",
                     public(_reference_view(engine, settings.ingress.secrets)), methods=["POST"])
    return app
