"""GET /audit/verifier.py: who may export the log downloads the one-file verifier from the
export panel; everyone else is refused; without a signing key it is a clear 404."""

from __future__ import annotations

import hashlib

import pytest

from console.audit import standalone
from console.audit.settings import AuditSettings
from tests.audit.conftest import keyed_settings

settings = pytest.fixture(keyed_settings, name="settings")


def _configure(app, **audit):
    app.extensions["settings"] = app.extensions["settings"].replace(audit=AuditSettings(**audit))


def test_the_export_panel_links_the_verifier_and_how_to_run_it(as_compliance):
    body = as_compliance.get("/audit/").get_data(as_text=True)
    assert 'href="/audit/verifier.py"' in body
    assert f"python3 {standalone.FILENAME} EXPORT.zip --public-key" in body


def test_compliance_downloads_the_file_the_cli_writes(as_compliance, cli, tmp_path):
    response = as_compliance.get("/audit/verifier.py")
    assert response.status_code == 200 and response.mimetype == "text/x-python"
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename={standalone.FILENAME}")
    assert response.headers["Cache-Control"] == "no-store"
    data = response.get_data()
    assert response.headers["X-Verifier-SHA256"] == hashlib.sha256(data).hexdigest()
    out = tmp_path / "v.py"
    result, _ = cli("audit", "verifier", "--out", str(out))
    assert result.exit_code == 0 and out.read_bytes() == data


@pytest.mark.parametrize("persona", ["as_viewer", "as_operator", "as_oncall", "as_admin"])
def test_who_cannot_export_is_refused_the_verifier(request, persona, db_session):
    response = request.getfixturevalue(persona).get("/audit/verifier.py")
    assert response.status_code == 403
    assert "_EmbeddedModules" not in response.get_data(as_text=True)


def test_anonymous_requests_are_sent_to_sign_in(client):
    assert client.get("/audit/verifier.py").status_code in {302, 401, 403}


def test_without_a_signing_key_it_is_a_clear_404_and_not_offered(app, as_compliance):
    _configure(app)
    assert "/audit/verifier.py" not in as_compliance.get("/audit/").get_data(as_text=True)
    response = as_compliance.get("/audit/verifier.py")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "no verifier to download" in body and "AUDIT_EXPORT_SIGNING_KEY" in body


def test_a_module_the_file_cannot_carry_is_a_clear_503(as_compliance, monkeypatch):
    monkeypatch.setattr(standalone, "module_source", lambda name: "import flask\n")
    response = as_compliance.get("/audit/verifier.py")
    assert response.status_code == 503 and "imports flask" in response.get_data(as_text=True)
