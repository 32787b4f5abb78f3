"""Default deny in console.security.permissions, independent of how console.auth wires it."""

from flask import Flask

from console.security.permissions import Permission, require


def test_a_protected_view_is_refused_when_no_enforcer_is_installed():
    # An app (or a tool built on these blueprints) without console.auth must fail closed.
    app = Flask(__name__)

    @app.get("/panel")
    @require(Permission.VIEW_PANELS)
    def panel():
        return "operational data"

    response = app.test_client().get("/panel")
    assert response.status_code == 403
    assert b"operational data" not in response.data
