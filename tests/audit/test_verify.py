"""The verifier names the first row that was changed, deleted, inserted or moved.

The append-only guard is lifted inside the test's (rolled-back) transaction to play the attacker
with direct database access.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text

from console.audit import Actor, AuditAction, record
from console.audit.chain import fields_of, row_hash
from console.audit.models import AuditEvent
from console.audit.verify import verify_chain, verify_rows


def _lift_guard(session):
    if session.bind.dialect.name == "postgresql":
        session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
    else:
        session.execute(text("DROP TRIGGER audit_event_no_update"))
        session.execute(text("DROP TRIGGER audit_event_no_delete"))


@pytest.fixture
def chain(db_session):
    for n in range(6):
        record(db_session, actor=Actor.cli(f"user{n}"), action=AuditAction.AUDIT_LOG_VIEW,
               details={"n": n})
    db_session.flush()
    assert verify_chain(db_session).ok
    _lift_guard(db_session)
    return db_session


def test_intact_chain_reports_rows_and_head(chain):
    report = verify_chain(chain)
    assert report.ok and report.rows == 6 and report.head_seq == 6


def test_a_changed_row_is_named(chain):
    chain.execute(text("UPDATE audit_event SET actor_id = 'mallory' WHERE seq = 3"))
    report = verify_chain(chain)
    assert not report.ok and report.broken_seq == 3 and "changed" in report.problem


def test_a_changed_row_with_a_recomputed_hash_breaks_the_next_link(chain):
    event = chain.get(AuditEvent, 3)
    fields = fields_of(event) | {"actor_id": "mallory"}
    forged = row_hash(event.prev_hash, fields)
    chain.execute(text("UPDATE audit_event SET actor_id='mallory', row_hash=:h WHERE seq=3"),
                  {"h": forged})
    chain.expire_all()
    report = verify_chain(chain)
    assert not report.ok and report.broken_seq == 4 and "does not link" in report.problem


def test_a_deleted_row_is_named(chain):
    chain.execute(text("DELETE FROM audit_event WHERE seq = 4"))
    report = verify_chain(chain)
    assert not report.ok and report.broken_seq == 4 and "missing" in report.problem


def test_deleting_the_newest_rows_is_detected_through_the_head(chain):
    chain.execute(text("DELETE FROM audit_event WHERE seq >= 5"))
    report = verify_chain(chain)
    assert not report.ok and report.broken_seq == 5 and "missing" in report.problem


def test_an_inserted_row_is_named(chain):
    chain.execute(text("UPDATE audit_event SET seq = seq + 100 WHERE seq >= 3"))
    chain.execute(text("UPDATE audit_event SET seq = seq - 99 WHERE seq >= 103"))
    original_2 = chain.get(AuditEvent, 2)
    chain.execute(text(
        "INSERT INTO audit_event (seq, occurred_at, actor_type, actor_id, action, outcome, "
        "details, prev_hash, row_hash) SELECT 3, occurred_at, actor_type, 'mallory', action, "
        "outcome, details, row_hash, :fake FROM audit_event WHERE seq = 2"),
        {"fake": "f" * 64})
    assert original_2 is not None
    report = verify_chain(chain)
    assert not report.ok and report.broken_seq == 3


def test_reordered_rows_are_named(chain):
    # Swap the content of rows 2 and 5 while keeping sequence numbers in place.
    chain.execute(text("UPDATE audit_event SET seq = 1000 WHERE seq = 2"))
    chain.execute(text("UPDATE audit_event SET seq = 2 WHERE seq = 5"))
    chain.execute(text("UPDATE audit_event SET seq = 5 WHERE seq = 1000"))
    report = verify_chain(chain)
    assert not report.ok and report.broken_seq == 2


def test_a_row_repeated_in_an_export_is_named_out_of_order(chain):
    rows = chain.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    report = verify_rows([*rows[:3], rows[1], *rows[3:]])
    assert not report.ok
    assert report.broken_seq == 2 and report.rows == 4 and report.head_seq == 3
    assert report.problem == "row 2 appears out of order after row 3"


def test_timestamp_text_writes_what_the_chain_has_always_hashed():
    """Rows hashed before ``timestamp_text`` moved from strftime to isoformat must still verify:
    the two agree on every moment, whatever its zone, with or without microseconds."""
    import datetime as dt
    import random

    from console.audit.chain import timestamp_text

    rng = random.Random(15)
    start = dt.datetime(1000, 1, 1, tzinfo=dt.UTC)
    for _ in range(20_000):
        moment = start + dt.timedelta(microseconds=rng.randrange(9_000 * 365 * 86_400 * 10**6))
        if rng.random() < 0.3:
            moment = moment.replace(microsecond=0)
        moment = moment.astimezone(dt.timezone(dt.timedelta(minutes=rng.randrange(-720, 721))))
        assert timestamp_text(moment) == moment.astimezone(dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")


_FLAT_VALUES = st.one_of(st.none(), st.text(), st.integers(), st.booleans(),
                         st.floats(allow_nan=False, allow_infinity=False),
                         st.lists(st.integers(), max_size=2))


@given(st.dictionaries(st.text(), _FLAT_VALUES, max_size=14))
def test_flat_canonical_json_is_canonical_json(fields):
    """The fast writer of a row's hashed fields changes no hash: for any text (quotes, control
    characters, non-ASCII, surrogates), number or null it writes what the encoder writes, and
    anything else (booleans, floats, lists) goes to the encoder."""
    from console.audit.chain import canonical_json, flat_canonical_json

    assert flat_canonical_json(fields) == canonical_json(fields)
