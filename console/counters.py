"""Per-minute counters for traffic we refuse, added to atomically.

Unauthenticated traffic must not become one write per request: a refusal adds one to the row of
its (minute, key...) with a single INSERT ... ON CONFLICT DO UPDATE, so a flood from one source
costs one row a minute per key, however many processes take it. A concurrent upsert on the same
key waits on the row (PostgreSQL) or the write lock (SQLite), then adds to the committed count.

A counter table has ``count``, ``first_seen_at`` and ``last_seen_at`` columns, a unique
constraint on its key columns, and optional sample columns that keep the first value seen.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Table, bindparam, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


def minute_of(at: dt.datetime) -> dt.datetime:
    """The counter bucket an instant falls in: its UTC minute."""
    return at.astimezone(dt.UTC).replace(second=0, microsecond=0)


def _upsert(dialect, least, greatest, table: Table, keys: tuple[str, ...],
            columns: tuple[str, ...], samples: tuple[str, ...],
            latest: tuple[str, ...]) -> Insert:
    statement = dialect.insert(table).values(
        {column: bindparam(column, type_=table.c[column].type) for column in columns})
    new, old = statement.excluded, table.c
    return statement.on_conflict_do_update(
        index_elements=[old[key] for key in keys],
        set_={"count": old["count"] + new["count"],
              "first_seen_at": least(old.first_seen_at, new.first_seen_at),
              "last_seen_at": greatest(old.last_seen_at, new.last_seen_at),
              # One sample each: the first that had one.
              **{name: func.coalesce(old[name], new[name]) for name in samples},
              **{name: new[name] for name in latest}})


def counter_upserts(table: Table, *, keys: tuple[str, ...], columns: tuple[str, ...],
                    samples: tuple[str, ...] = (), latest: tuple[str, ...] = ()
                    ) -> dict[str, Insert]:
    """The upsert statement for each backend, built once at import. ``columns`` are every
    column written (the keys, ``count``, the two times, the samples and any column kept from
    the first row as it was); ``latest`` columns take the value of the newest refusal.
    SQLite's two-argument min()/max() are its LEAST/GREATEST (its
    datetimes are ISO text, which orders as time)."""
    return {"postgresql": _upsert(postgresql, func.least, func.greatest, table, keys, columns,
                                  samples, latest),
            "sqlite": _upsert(sqlite, func.min, func.max, table, keys, columns, samples,
                              latest)}
