"""Searching the audit log: each filter narrows the rows, newest first; the time window includes
its start and excludes its end."""

import datetime as dt

import pytest

from console.audit import Actor, AuditAction, Target, record
from console.audit.queries import AuditFilter, search

DAY_ONE = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture
def history(db_session):
    for day, (actor, card) in enumerate([("first", "card-1"), ("second", "card-2"),
                                         ("third", "card-1")]):
        record(db_session, actor=Actor.cli(actor), action=AuditAction.AUDIT_LOG_VIEW,
               target=Target("card", card), at=DAY_ONE + day * DAY)
    db_session.flush()
    return db_session


def _actors(session, **criteria) -> list[str]:
    return [event.actor_id for event in search(session, AuditFilter(**criteria))]


def test_target_filter_finds_every_event_about_that_target_newest_first(history):
    assert _actors(history, target="card-1") == ["third", "first"]
    assert _actors(history, target="card-3") == []


def test_target_type_tells_apart_two_objects_that_share_an_id(history):
    record(history, actor=Actor.cli("fourth"), action=AuditAction.AUDIT_LOG_VIEW,
           target=Target("user", "card-1"), at=DAY_ONE + 3 * DAY)
    history.flush()
    assert _actors(history, target="card-1") == ["fourth", "third", "first"]
    assert _actors(history, target="card-1", target_type="card") == ["third", "first"]
    assert _actors(history, target="card-1", target_type="user") == ["fourth"]
    assert _actors(history, target_type="flow") == []


def test_the_time_window_includes_its_start_and_excludes_its_end(history):
    assert _actors(history, since=DAY_ONE + DAY) == ["third", "second"]
    assert _actors(history, until=DAY_ONE + DAY) == ["first"]
    assert _actors(history, since=DAY_ONE + DAY, until=DAY_ONE + 2 * DAY) == ["second"]
    assert _actors(history, since=DAY_ONE + DAY, until=DAY_ONE + DAY) == []
