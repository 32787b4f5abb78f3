"""The card-number scanner over a database: every text and JSON column of every table.

QUALITY.md: no full card number in any table dump across the whole test suite. The suite's
conftest runs this over every PostgreSQL database it created, at the end of the run, before
dropping them; a hit fails the run like a leaked log line does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from sqlalchemy import JSON, String, Text, inspect, select, table, text
from sqlalchemy import column as sql_column
from sqlalchemy.engine import Engine

from console.finci.contract import is_finci_id
from console.security.redaction import find_pans

# (table, column) pairs that hold full test card numbers on purpose. None so far: a new entry
# needs a reason here (it would be read as "this column may hold card data").
ALLOWED: frozenset[tuple[str, str]] = frozenset()


# The PostgreSQL types that hold text: what the inspector reports as String, Text or JSON.
_PG_TEXT_TYPES = ("character varying", "character", "text", "json", "jsonb", "USER-DEFINED")


def _text_columns(engine: Engine) -> Iterator[tuple[str, list[str]]]:
    if engine.dialect.name == "postgresql":
        # One catalogue query: the end-of-run scan visits every database of the run, and
        # reflecting each table through the inspector took most of its time.
        with engine.connect() as connection:
            found: dict[str, list[str]] = {}
            for name, column in connection.execute(text(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND data_type = ANY(:types) "
                    "ORDER BY table_name, ordinal_position"), {"types": list(_PG_TEXT_TYPES)}):
                if (name, column) not in ALLOWED:
                    found.setdefault(name, []).append(column)
        yield from found.items()
        return
    inspector = inspect(engine)
    for name in inspector.get_table_names():
        columns = [c["name"] for c in inspector.get_columns(name)
                   if isinstance(c["type"], String | Text | JSON)
                   and (name, c["name"]) not in ALLOWED]
        if columns:
            yield name, columns


def pans_in(value: object) -> list[str]:
    text = as_text(value)
    found = find_pans(text, is_finci_id)
    if not found and text[:1] in "[{":
        # JSON kept as text (stored bodies): what it decodes to ("\u0034111...", 4.1e15) counts.
        try:
            decoded = json.loads(text)
        except ValueError:
            return found
        found = find_pans(json.dumps(decoded, ensure_ascii=False), is_finci_id)
    return found


def as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def scan_database(engine: Engine, find: Callable[[object], list[str]] | None = None
                  ) -> list[tuple[str, str]]:
    """``[(where, masked card number), ...]`` for every full card number stored anywhere; with
    ``find``, what it finds in each value instead (tests.support.secret_scan)."""
    return scan_database_for(engine, {"found": find or pans_in})["found"]


def scan_database_for(engine: Engine, finders: dict[str, Callable[[object], list[str]]]
                      ) -> dict[str, list[tuple[str, str]]]:
    """Every finder over every stored value in one read of the database: ``{finder name:
    [(where, what it found), ...]}``."""
    hits: dict[str, list[tuple[str, str]]] = {kind: [] for kind in finders}
    with engine.connect() as connection:
        for name, columns in _text_columns(engine):
            query = select(*(sql_column(c) for c in columns)).select_from(table(name))
            for row in connection.execute(query):
                for column_name, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    for kind, find in finders.items():
                        hits[kind] += [(f"table:{name}.{column_name}", found)
                                       for found in find(value)]
    return hits
