"""The switch state fast path: one query for every flow, served from memory for under a second,
seen at once by the process that changed it and within a second by every other instance."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from console.audit import Actor
from console.db import Database, make_engine
from console.flows import cache
from console.flows.services import Flow, all_states, is_enabled, set_flow

ONCALL = Actor.cli("oncall-anna")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(cache.CACHE, "clock", fake)
    return fake


@pytest.fixture
def two_instances(db_factory):
    """Two console instances on one committed database: separate engines, separate pools."""
    url = db_factory.fresh()
    first, second = Database(make_engine(url)), Database(make_engine(url))
    yield first, second
    first.dispose()
    second.dispose()


def _count_queries(engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: seen.append(statement)
                 if "flow_switch" in statement else None)
    return seen


def test_a_change_by_one_instance_is_seen_by_the_other_within_a_second(two_instances, clock):
    first, second = two_instances
    with second.transaction() as session:
        assert is_enabled(session, Flow.DECISIONING)  # cached by the second instance
    with first.transaction() as session:
        set_flow(session, ONCALL, Flow.DECISIONING, enabled=False, reason="INC-1")
    with first.transaction() as session:
        assert not is_enabled(session, Flow.DECISIONING)  # its own change: at once
    clock.now += 0.999
    with second.transaction() as session:
        assert is_enabled(session, Flow.DECISIONING)  # still inside its second
    clock.now += 0.001
    with second.transaction() as session:
        assert not is_enabled(session, Flow.DECISIONING)  # a second old: read again


def test_within_the_second_every_flow_comes_from_one_query_then_none(two_instances, clock):
    first, _ = two_instances
    queries = _count_queries(first.engine)
    for _ in range(5):
        with first.transaction() as session:
            assert all(state.enabled for state in all_states(session))
            assert is_enabled(session, Flow.PROCESSING)
    assert len(queries) == 1
    clock.now += 1.0
    with first.transaction() as session:
        is_enabled(session, Flow.PROCESSING)
    assert len(queries) == 2


def test_the_changing_session_sees_its_uncommitted_change_and_nobody_else_does(
        two_instances, clock, backend):
    first, _ = two_instances
    with first.transaction() as other:
        assert is_enabled(other, Flow.REVEAL)
    writer = first.session()
    try:
        set_flow(writer, ONCALL, Flow.REVEAL, enabled=False, reason="INC-2")
        assert not is_enabled(writer, Flow.REVEAL)
        if backend == "postgresql":  # SQLite's single writer locks other transactions out
            with first.transaction() as other:
                assert is_enabled(other, Flow.REVEAL)  # not committed: on for everyone else
        writer.rollback()
        assert is_enabled(writer, Flow.REVEAL)
    finally:
        writer.close()
    with first.transaction() as other:
        assert is_enabled(other, Flow.REVEAL)


def test_a_read_that_started_before_a_change_cannot_cache_the_old_state(two_instances, clock):
    first, _ = two_instances
    stale = cache.CACHE
    with first.transaction() as reader:
        def load_then_someone_changes(session):
            rows = {flow: True for flow in Flow}
            with first.transaction() as writer:
                set_flow(writer, ONCALL, Flow.CARD_ACTIONS, enabled=False, reason="INC-3")
            return rows

        stale.get(reader, load_then_someone_changes)
    with first.transaction() as session:
        assert not is_enabled(session, Flow.CARD_ACTIONS)


def test_a_clock_that_goes_back_reads_again(two_instances, clock):
    first, _ = two_instances
    queries = _count_queries(first.engine)
    with first.transaction() as session:
        is_enabled(session, Flow.PROCESSING)
    clock.now -= 5
    with first.transaction() as session:
        is_enabled(session, Flow.PROCESSING)
    assert len(queries) == 2
