"""Security headers on every response, errors included (after_request runs for those too)."""

from __future__ import annotations

import secrets

from flask import Flask, g, request


def csp_nonce() -> str:
    nonce = getattr(g, "csp_nonce", None)
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return nonce


def allow_form_action(origin: str) -> None:
    """Let this response's forms (or redirects after them) reach ``origin``, e.g. the IdP."""
    extra = getattr(g, "csp_form_action", None) or []
    extra.append(origin)
    g.csp_form_action = extra


def _policy() -> str:
    nonce = csp_nonce()
    form_action = " ".join(["'self'", *getattr(g, "csp_form_action", [])])
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        f"style-src 'self' 'nonce-{nonce}'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        f"form-action {form_action}",
        "frame-ancestors 'none'",
    ])


def init_app(app: Flask, *, hsts: bool) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _headers(response):
        headers = response.headers
        headers["Content-Security-Policy"] = _policy()
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "no-referrer"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Cross-Origin-Resource-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
        if hsts:
            headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
        if request.endpoint == "static":
            headers.setdefault("Cache-Control", "public, max-age=3600")
        else:
            # Console pages show operational and personal data: never store them anywhere.
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        headers.add("Vary", "HX-Request")
        headers.add("Vary", "Cookie")
        return response
