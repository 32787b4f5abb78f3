"""FINCI operations console.

``create_app`` only builds the application: it runs no queries and no migrations (those are
``flask --app wsgi db upgrade`` and the startup checks in ``console.startup``).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from console import errors, navigation, request_params, unit_of_work
from console.auth import access as auth_access
from console.db import Database
from console.htmx import htmx
from console.keys import usage as key_usage
from console.observability import logging as console_logging
from console.observability import request_ids
from console.security import csrf, headers, permissions, query_masking
from console.settings import Serve, Settings

ROOT = Path(__file__).resolve().parent.parent

# Blueprints that speak JSON to machines, are CSRF-exempt and render JSON errors.
MACHINE_BLUEPRINTS = {"ingress", "metrics"}


def create_app(settings: Settings | None = None, database: Database | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str((ROOT / settings.instance_path).resolve()),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_form_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_form_bytes,
        SESSION_COOKIE_NAME="__Host-console",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        PREFERRED_URL_SCHEME="https",
        JSON_ERROR_BLUEPRINTS=MACHINE_BLUEPRINTS,
        TEMPLATES_AUTO_RELOAD=False,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    app.extensions["settings"] = settings
    if settings.trusted_proxy_count:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxy_count,
            x_proto=settings.trusted_proxy_count, x_host=settings.trusted_proxy_count)

    console_logging.install_redaction_everywhere()
    request_ids.init_app(app, trusted_proxy_count=settings.trusted_proxy_count)
    request_params.init_app(app)  # before csrf and permissions: see refuse_nul_characters
    query_masking.init_app(app)
    headers.init_app(app, hsts=settings.hsts)
    csrf.init_app(app, exempt_blueprints=MACHINE_BLUEPRINTS)
    permissions.init_app(app)
    unit_of_work.init_app(app, database or Database.from_settings(settings))
    key_usage.init_app(app, settings, app.extensions["database"])
    errors.init_app(app)
    navigation.init_app(app)
    htmx.init_app(app)
    auth_access.init_app(app, settings)
    permissions.public(app.view_functions["static"])

    app.jinja_env.globals["settings"] = settings
    _register_blueprints(app, settings)
    return app


def _register_blueprints(app: Flask, settings: Settings) -> None:
    from console.health.routes import bp as health_bp
    from console.monitoring.metrics_routes import bp as metrics_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)  # every node: its figures come from the database
    if settings.serve in (Serve.ALL, Serve.INGRESS):
        from console.ingress.routes import bp as ingress_bp

        app.register_blueprint(ingress_bp)
    if settings.serve in (Serve.ALL, Serve.CONSOLE):
        from console.audit.routes import bp as audit_bp
        from console.auth.admin_routes import bp as users_bp
        from console.auth.routes import bp as auth_bp
        from console.cards.reveal_routes import bp as card_reveal_bp
        from console.checks.routes import bp as checks_bp
        from console.flows.routes import bp as flows_bp
        from console.home.routes import bp as home_bp
        from console.keys.card_data_routes import bp as card_data_keys_bp
        from console.keys.routes import bp as keys_bp
        from console.monitoring.routes import bp as changes_bp
        from console.pipeline.routes import bp as pipeline_bp

        app.register_blueprint(home_bp)
        app.register_blueprint(audit_bp)
        app.register_blueprint(auth_bp)
        app.register_blueprint(users_bp)
        app.register_blueprint(flows_bp)
        app.register_blueprint(pipeline_bp)
        app.register_blueprint(keys_bp)
        app.register_blueprint(card_data_keys_bp)
        app.register_blueprint(card_reveal_bp)
        app.register_blueprint(changes_bp)
        app.register_blueprint(checks_bp)
    # Decisioning: the ingress's decider, the worker's authorization handler, console pages.
    from console.decisioning.port import init_app as init_decisioning

    init_decisioning(app, settings)
    # Transaction and card lifecycle: settings for handlers and jobs, console pages.
    from console.transactions.wiring import init_app as init_lifecycle

    init_lifecycle(app, settings)
