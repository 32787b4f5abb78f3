"""Wiring, called once by ``create_app``: the settings handlers and jobs read outside requests,
and the console pages for transactions and cards."""

from __future__ import annotations

from flask import Flask

from console.transactions import settings as lifecycle_settings


def init_app(app: Flask, settings) -> None:
    lifecycle_settings.install(settings.lifecycle)
    from console.settings import Serve

    if settings.serve in (Serve.ALL, Serve.CONSOLE):
        from console.cards.routes import bp as cards_bp
        from console.transactions.routes import bp as transactions_bp

        app.register_blueprint(transactions_bp)
        app.register_blueprint(cards_bp)
