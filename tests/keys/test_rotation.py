"""Webhook secret rotation with overlap, through the real ingress endpoint and the CLI:
both secrets verify during the window, the old one fails after it (or once retired), and a
secret tagged for the other environment never verifies."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from console.audit.models import AuditEvent
from console.finci.webhook_signature import WebhookSecret
from console.keys import inventory
from console.keys.inventory import EnvironmentRefused, Kind
from console.keys.models import Credential, CredentialEvent
from console.keys.webhook_secrets import secret_set, store_name
from console.secrets.local import LocalKeystore
from tests.conftest import make_settings
from tests.ingress.helpers import deliver, ingress_settings, message
from tests.keys.conftest import use_store

OLD = WebhookSecret(b"rotation-old-secret-0123456789abcd")
NEW = WebhookSecret(b"rotation-new-secret-0123456789abcd")


@pytest.fixture
def settings(db_factory):
    return make_settings(db_factory.shared_url, ingress=ingress_settings(secrets=(OLD,)))


@pytest.fixture
def store(app, tmp_path):
    return use_store(app, LocalKeystore(tmp_path / "keystore", b"k" * 32))


@pytest.fixture
def clock(app):
    import time

    class Clock:
        now = float(int(time.time()))

        def __call__(self):
            return self.now

    fixed = Clock()
    app.extensions["ingress.clock"] = fixed
    return fixed


def _post(client, clock, secret):
    return deliver(client, message(), secret=secret, timestamp=int(clock.now)).status_code


def _add(cli, secret: WebhookSecret, *extra):
    result, _ = cli("keys", "add-webhook-secret", "--reason", "FINCI rotated the endpoint",
                    *extra, input=secret.export() + "\n")
    return result


@pytest.fixture
def cli(app):
    from console.cli import register_commands

    register_commands(app)
    runner = app.test_cli_runner()

    def invoke(*args, input=None):
        import json

        result = runner.invoke(args=list(args), input=input)
        return result, (json.loads(result.output) if "--json" in args and result.exit_code == 0
                        else None)
    return invoke


def test_both_verify_during_the_overlap_and_the_old_fails_after_it(client, clock, cli, store,
                                                                   db_session):
    assert _post(client, clock, OLD) == 200
    assert _post(client, clock, NEW) == 401

    result = _add(cli, NEW, "--overlap-hours", "2")
    assert result.exit_code == 0, result.output
    assert NEW.export() not in result.output and NEW.fingerprint in result.output
    assert store.get(store_name("sandbox", NEW.fingerprint)) == NEW.export().encode()

    assert _post(client, clock, NEW) == 200
    assert _post(client, clock, OLD) == 200
    clock.now += 2 * 3600 - 5
    assert _post(client, clock, OLD) == 200
    clock.now += 10  # past the window: refused without any reload
    assert _post(client, clock, OLD) == 401
    assert _post(client, clock, NEW) == 200

    _, listed = cli("keys", "list", "--json")
    by_fp = {row["fingerprint"]: row for row in listed["credentials"]}
    assert by_fp[NEW.fingerprint]["status"] == "active" and by_fp[NEW.fingerprint]["stored"]
    assert by_fp[OLD.fingerprint]["status"] == "retiring"
    assert by_fp[OLD.fingerprint]["last_used_at"] is not None
    assert NEW.export() not in str(listed)


def test_retiring_the_old_secret_ends_the_overlap_at_once(client, clock, cli, store, db_session):
    assert _add(cli, NEW).exit_code == 0
    assert _post(client, clock, OLD) == 200
    old = inventory.find(db_session, Kind.WEBHOOK_SECRET, OLD.fingerprint, "sandbox")
    result, _ = cli("keys", "retire", str(old.id), "--reason", "FINCI confirmed the new one")
    assert result.exit_code == 0, result.output
    assert _post(client, clock, OLD) == 401
    assert _post(client, clock, NEW) == 200
    events = db_session.scalars(select(CredentialEvent.to_status)
                                .where(CredentialEvent.credential_id == old.id)
                                .order_by(CredentialEvent.id)).all()
    assert events == ["active", "retiring", "retired"]
    actions = set(db_session.scalars(select(AuditEvent.action)))
    assert {"keys.credential.create", "keys.credential.schedule_retire",
            "keys.credential.retire"} <= actions


def test_revoking_a_leaked_secret_refuses_it_even_while_still_configured(client, clock, cli,
                                                                         store, db_session):
    assert _add(cli, NEW).exit_code == 0
    new = inventory.find(db_session, Kind.WEBHOOK_SECRET, NEW.fingerprint, "sandbox")
    assert cli("keys", "revoke", str(new.id), "--reason", "leaked")[0].exit_code == 0
    assert _post(client, clock, NEW) == 401
    assert _post(client, clock, OLD) == 200  # still inside its window
    old = inventory.find(db_session, Kind.WEBHOOK_SECRET, OLD.fingerprint, "sandbox")
    assert cli("keys", "revoke", str(old.id), "--reason", "leaked too")[0].exit_code == 0
    assert _post(client, clock, OLD) == 401  # configured in FINCI_WEBHOOK_SECRETS, revoked
    result, _ = cli("keys", "activate", str(old.id), "--reason", "undo")
    assert result.exit_code == 1 and "revoked and cannot become active" in result.output


def test_a_secret_tagged_for_production_never_verifies_sandbox_traffic(app, client, clock, cli,
                                                                       store, db_session):
    name = store_name("production", NEW.fingerprint)
    store.put(name, NEW.export().encode())
    at = dt.datetime.now(dt.UTC)
    db_session.add(Credential(kind=Kind.WEBHOOK_SECRET.value, name=name, environment="production",
                              fingerprint=NEW.fingerprint, store_name=name, status="active",
                              created_at=at, created_by="test", activated_at=at))
    db_session.flush()
    secret_set(app).invalidate()
    assert _post(client, clock, NEW) == 401
    row = db_session.scalar(select(Credential).where(Credential.environment == "production"))
    with pytest.raises(EnvironmentRefused, match="tagged for production and is refused in "
                                                 "sandbox"):
        inventory.get(db_session, row.id, "sandbox")
    result, _ = cli("keys", "retire", str(row.id), "--reason", "wrong environment")
    assert result.exit_code == 1 and "refused in sandbox" in result.output
    _, listed = cli("keys", "list", "--json")
    assert NEW.fingerprint not in {r["fingerprint"] for r in listed["credentials"]}


def test_a_sandbox_row_pointing_at_a_production_store_name_is_refused(app, client, clock, store,
                                                                      db_session):
    name = store_name("production", NEW.fingerprint)
    store.put(name, NEW.export().encode())
    at = dt.datetime.now(dt.UTC)
    db_session.add(Credential(kind=Kind.WEBHOOK_SECRET.value, name=name, environment="sandbox",
                              fingerprint=NEW.fingerprint, store_name=name, status="active",
                              created_at=at, created_by="test", activated_at=at))
    db_session.flush()
    secret_set(app).invalidate()
    assert _post(client, clock, NEW) == 401


def test_add_refuses_bad_values_and_a_missing_or_read_only_store(app, cli, tmp_path, db_session):
    result = _add(cli, NEW)
    assert result.exit_code == 1 and "no secret store is configured" in result.output
    from console.secrets.files import FileStore

    use_store(app, FileStore(tmp_path))
    result = _add(cli, NEW)
    assert result.exit_code == 1 and "read-only" in result.output
    use_store(app, LocalKeystore(tmp_path / "ks", b"k" * 32))
    result, _ = cli("keys", "add-webhook-secret", "--reason", "x", input="not-a-secret\n")
    assert result.exit_code == 1 and "not a webhook secret" in result.output
    assert db_session.scalars(select(Credential)).all() == []


def test_the_hot_path_reads_the_store_once_per_secret(app, client, clock, cli, store):
    assert _add(cli, NEW).exit_code == 0
    reads = []
    original = store.get
    store.get = lambda name: reads.append(name) or original(name)
    for _ in range(20):
        assert _post(client, clock, NEW) == 200
    secret_set(app).invalidate()
    assert _post(client, clock, NEW) == 200
    # One read at the first delivery after the add, none per request or at the reload.
    assert reads == [store_name("sandbox", NEW.fingerprint)]


def test_the_status_report_shows_what_ingress_accepts_and_which_secret_verified(cli, client,
                                                                               clock, store):
    assert _add(cli, NEW, "--overlap-hours", "3").exit_code == 0
    assert _post(client, clock, NEW) == 200
    _, report = cli("keys", "status", "--json")
    (item,) = [i for i in report["items"] if i["key"] == "webhook_secrets"]
    rows = {row["fingerprint"]: row for row in item["rows"]}
    assert rows[NEW.fingerprint]["state"] == "active"
    assert rows[NEW.fingerprint]["verified_7d"] == 1
    assert rows[OLD.fingerprint]["state"].startswith("retiring until ")
    finding = " ".join(f["action"] or "" for f in item["findings"])
    assert f"Remove {OLD.fingerprint} from FINCI_WEBHOOK_SECRETS" in finding


def test_a_secret_the_platform_mounted_is_named_not_pasted(app, client, clock, cli, tmp_path,
                                                         db_session):
    from console.secrets.files import FileStore

    root = tmp_path / "mounted"
    (root / "webhook" / "sandbox").mkdir(parents=True)
    (root / "webhook" / "sandbox" / "2026-12").write_text(NEW.export() + "\n")
    (root / "webhook" / "production").mkdir()
    (root / "webhook" / "production" / "2026-12").write_text(NEW.export() + "\n")
    use_store(app, FileStore(root))
    result, _ = cli("keys", "add-webhook-secret", "--reason", "x", "--stored-as",
                    "webhook/production/2026-12")
    assert result.exit_code == 1 and "refused" in result.output
    result, _ = cli("keys", "add-webhook-secret", "--reason", "x", "--stored-as",
                    "webhook/sandbox/missing")
    assert result.exit_code == 1 and "has no secret" in result.output
    result, _ = cli("keys", "add-webhook-secret", "--reason", "mounted by the platform",
                    "--stored-as", "webhook/sandbox/2026-12")
    assert result.exit_code == 0, result.output
    assert _post(client, clock, NEW) == 200 and _post(client, clock, OLD) == 200
    row = inventory.find(db_session, Kind.WEBHOOK_SECRET, NEW.fingerprint, "sandbox")
    assert row.store_name == "webhook/sandbox/2026-12"


def test_a_misconfigured_store_stops_the_start_not_a_delivery(settings, test_database,
                                                              tmp_path):
    from console import create_app
    from console.secrets.settings import Backend, SecretsSettings
    from console.settings import ConfigError

    broken = settings.replace(secrets=SecretsSettings(backend=Backend.FILES,
                                                      files_dir=str(tmp_path / "not-mounted")))
    with pytest.raises(ConfigError, match=r"SECRETS_BACKEND=files: .*does not exist"):
        create_app(broken, database=test_database)
