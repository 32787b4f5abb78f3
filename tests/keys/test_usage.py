""""Last used" for the credentials configured outside the console: the recorder's guarded,
throttled write, and the Card API client marking the token and secret when FINCI accepts them
(the simulator's Card API server checks the real signature)."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from console.audit.services import Actor
from console.cards.actions import card_api_client
from console.finci.card_api import CardApiError
from console.keys import inventory
from console.keys.inventory import Kind
from console.keys.models import Credential
from console.keys.services import TlsFiles
from console.keys.usage import UsageRecorder, recorder_for
from console.simulator.card_api_server import CardApiServer
from console.simulator.cards import CardBook
from console.transactions.settings import LifecycleSettings
from tests.keys.conftest import API_SECRET, API_TOKEN, OIDC_SECRET, card_api, oidc

ACTOR = Actor.system("test")
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def _add(session, kind: Kind, value: str, *, environment="sandbox", activate=True):
    credential = inventory.create(session, ACTOR, kind=kind, name=kind.value,
                                  environment=environment,
                                  fingerprint=inventory.fingerprint(value.encode()), at=T0,
                                  reason="test", activate=activate)
    session.commit()
    return credential


def _last_used(session, credential):
    session.expire_all()
    return session.get(Credential, credential.id).last_used_at


@pytest.fixture
def counting(test_database):
    """The test database's transaction factory, counting the transactions it opens."""
    opened = []

    @contextmanager
    def transaction():
        opened.append(1)
        with test_database.transaction() as session:
            yield session

    transaction.opened = opened
    return transaction


def _recorder(transaction, clock, **kinds):
    fingerprints = {Kind(kind): inventory.fingerprint(value.encode())
                    for kind, value in kinds.items()}
    return UsageRecorder(transaction, "sandbox", fingerprints, clock=clock)


def test_a_use_marks_the_held_credential_only(db_session, counting):
    token = _add(db_session, Kind.FINCI_API_TOKEN, API_TOKEN)
    other = _add(db_session, Kind.FINCI_API_TOKEN, "an-older-token-" + "x" * 20)
    production = _add(db_session, Kind.FINCI_API_TOKEN, API_TOKEN, environment="production")
    clock = Clock()
    _recorder(counting, clock, finci_api_token=API_TOKEN).used(Kind.FINCI_API_TOKEN)
    assert _last_used(db_session, token) == T0
    assert _last_used(db_session, other) is None
    assert _last_used(db_session, production) is None  # another environment's row


def test_uses_within_a_minute_cost_one_write_and_later_ones_another(db_session, counting):
    token = _add(db_session, Kind.FINCI_API_TOKEN, API_TOKEN)
    clock = Clock()
    recorder = _recorder(counting, clock, finci_api_token=API_TOKEN)
    for seconds in (0, 10, 59):
        clock.now = T0 + dt.timedelta(seconds=seconds)
        recorder.used(Kind.FINCI_API_TOKEN)
    assert len(counting.opened) == 1
    assert _last_used(db_session, token) == T0
    clock.now = T0 + dt.timedelta(seconds=61)
    recorder.used(Kind.FINCI_API_TOKEN)
    assert len(counting.opened) == 2
    assert _last_used(db_session, token) == clock.now


def test_a_kind_the_process_does_not_hold_costs_nothing(db_session, counting):
    _add(db_session, Kind.SSO_CLIENT_SECRET, OIDC_SECRET)
    recorder = _recorder(counting, Clock(), finci_api_token=API_TOKEN)
    assert not recorder.holds(Kind.SSO_CLIENT_SECRET)
    recorder.used(Kind.SSO_CLIENT_SECRET)
    assert counting.opened == []


@pytest.mark.parametrize("status", ["retired", "revoked", "pending"])
def test_a_credential_out_of_use_is_not_marked(db_session, counting, status):
    token = _add(db_session, Kind.FINCI_API_TOKEN, API_TOKEN, activate=status != "pending")
    move = {"retired": inventory.retire, "revoked": inventory.revoke}.get(status)
    if move is not None:
        move(db_session, ACTOR, token, environment="sandbox", at=T0, reason="test")
        db_session.commit()
    _recorder(counting, Clock(), finci_api_token=API_TOKEN).used(Kind.FINCI_API_TOKEN)
    assert _last_used(db_session, token) is None


def test_a_later_write_never_moves_last_used_back(db_session, counting):
    token = _add(db_session, Kind.FINCI_API_TOKEN, API_TOKEN)
    late, early = Clock(), Clock()
    late.now = T0 + dt.timedelta(hours=1)
    _recorder(counting, late, finci_api_token=API_TOKEN).used(Kind.FINCI_API_TOKEN)
    _recorder(counting, early, finci_api_token=API_TOKEN).used(Kind.FINCI_API_TOKEN)
    assert _last_used(db_session, token) == late.now


def test_a_failed_write_is_logged_without_values_and_retried_on_the_next_use(
        db_session, counting, caplog):
    token = _add(db_session, Kind.FINCI_API_TOKEN, API_TOKEN)
    failing = [True]

    @contextmanager
    def transaction():
        if failing[0]:
            raise OperationalError("UPDATE credential", {}, Exception("database is locked"))
        with counting() as session:
            yield session

    clock = Clock()
    recorder = _recorder(transaction, clock, finci_api_token=API_TOKEN)
    recorder.used(Kind.FINCI_API_TOKEN)  # must not raise into the caller
    assert "could not record the use of finci_api_token: OperationalError" in caplog.text
    assert API_TOKEN not in caplog.text
    failing[0] = False
    clock.now = T0 + dt.timedelta(seconds=5)  # within the minute: the failed write did not count
    recorder.used(Kind.FINCI_API_TOKEN)
    assert _last_used(db_session, token) == clock.now


def test_the_recorder_knows_the_fingerprints_the_inventory_records(settings, test_database):
    configured = settings.replace(lifecycle=card_api(), auth=oidc())
    recorder = recorder_for(configured, TlsFiles(), test_database.transaction)
    assert recorder.holds(Kind.FINCI_API_TOKEN) and recorder.holds(Kind.FINCI_API_SECRET)
    assert recorder.holds(Kind.SSO_CLIENT_SECRET)
    assert not recorder.holds(Kind.TLS_CERTIFICATE)  # TLS is terminated elsewhere here
    unconfigured = settings.replace(lifecycle=LifecycleSettings())
    assert not recorder_for(unconfigured, TlsFiles(), test_database.transaction).holds(
        Kind.FINCI_API_TOKEN)


# --- the Card API, through the client the jobs and the CLI use ----------------------------------

@pytest.fixture
def finci():
    with CardApiServer(CardBook([]), API_TOKEN, API_SECRET) as server:
        yield server


@pytest.fixture
def settings(settings, finci):
    return settings.replace(lifecycle=LifecycleSettings(
        api_base_url=finci.url, api_token=API_TOKEN, api_secret=API_SECRET))


def test_a_card_api_call_finci_accepts_marks_the_token_and_secret_used(app, settings,
                                                                      db_session):
    token = _add(db_session, Kind.FINCI_API_TOKEN, API_TOKEN)
    secret = _add(db_session, Kind.FINCI_API_SECRET, API_SECRET)
    before = dt.datetime.now(dt.UTC)
    with app.app_context(), card_api_client(settings.lifecycle) as client:
        client.get_cards(person_id="per_nobody")
    assert _last_used(db_session, token) >= before.replace(microsecond=0)
    assert _last_used(db_session, secret) == _last_used(db_session, token)


def test_a_call_finci_refuses_leaves_last_used_alone(app, settings, db_session):
    token = _add(db_session, Kind.FINCI_API_TOKEN, API_TOKEN)
    wrong = settings.lifecycle.__class__(api_base_url=settings.lifecycle.api_base_url,
                                         api_token=API_TOKEN, api_secret="not-the-secret")
    with app.app_context(), card_api_client(wrong, max_attempts=1) as client, \
            pytest.raises(CardApiError) as refused:
        client.get_cards(person_id="per_nobody")
    assert refused.value.status == 401
    assert _last_used(db_session, token) is None
    assert db_session.scalar(select(Credential.last_used_at).where(
        Credential.kind == Kind.FINCI_API_TOKEN.value)) is None
