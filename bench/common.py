"""Shared pieces for benchmarks: the Figure record, percentiles, the table and the JSON file."""

from __future__ import annotations

import datetime as dt
import json
import platform
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Figure:
    name: str            # what was measured, e.g. "ingest throughput"
    value: float
    unit: str            # "req/s", "ms"
    reference: float | None = None   # the same figure for the reference, measured in this run
    reference_name: str | None = None
    higher_is_better: bool = True
    target: str | None = None        # e.g. ">= 0.8x reference", "p99 < 50 ms"
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if not self.reference:
            return None
        return self.value / self.reference


def percentile(samples: list[float], pct: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "reference", "ratio", "target", "met")]
    for f in figures:
        ref = f"{f.reference:,.2f} {f.unit} ({f.reference_name})" if f.reference else "—"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "—"
        met = "—" if f.met is None else ("yes" if f.met else "NO")
        rows.append((f.name, f"{f.value:,.2f} {f.unit}", ref, ratio, f.target or "—", met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_results(name: str, figures: list[Figure]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({
        "measured_at": dt.datetime.now(dt.UTC).isoformat(),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "figures": [asdict(f) | {"ratio": f.ratio} for f in figures],
    }, indent=2))
    return path


class ScratchDatabase:
    """A migrated PostgreSQL database of its own for one benchmark, dropped afterwards."""

    def __init__(self, server_url: str = DEFAULT_PG):
        self.server_url = server_url
        self.name = f"console_bench_{uuid.uuid4().hex[:10]}"
        self.url = server_url.rsplit("/", 1)[0] + "/" + self.name

    def __enter__(self) -> str:
        from console import migrate
        from console.db import make_engine

        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        admin.dispose()
        engine = make_engine(self.url)
        migrate.upgrade(engine)
        engine.dispose()
        return self.url

    def __exit__(self, *_exc) -> None:
        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        admin.dispose()
