"""Audit export and verification on PostgreSQL, at a million rows, with peak memory.

What runs (one scratch database holding a valid chain of BENCH_AUDIT_ROWS events, default
1,000,000, with a signed checkpoint every 1,000, written by ``tests/support/audit_chain.py``):

- read (the reference): the rows streamed in sequence order by ``iter_rows``, doing nothing
  with them: the floor of every figure below;
- database verify: ``verify_chain`` (what ``flask audit verify`` and the audit page run);
- export: ``export_log`` writing the signed zip to a file (what the page and
  ``flask audit export`` send);
- offline verify: ``console.audit.offline.verify_export`` of that zip (the auditor's check),
  against reading the zip's event lines and nothing else.

Every measurement runs in a fresh process, so its peak resident memory (VmHWM) is its
own. Memory is flat when the run over all rows peaks no higher than the same run over a tenth of
them plus a small allowance (what is fixed: the interpreter, imports, one fetch batch).

Target (issue 15): >= 50,000 rows/s for export and verification, flat memory.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from bench.common import Figure, ScratchDatabase

TARGET_ROWS_S = 50_000
FLAT_ALLOWANCE_MB = 16.0  # a peak this far above the tenth-size run's still counts as flat


def _session(url: str):
    from console.db import Database, make_engine

    return Database(make_engine(url)).session()


def _key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(os.environ["BENCH_AUDIT_KEY"].encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def _peak_mb() -> float:
    """This process's resident high-water mark. Not ``ru_maxrss``: Linux carries that across
    fork and exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (the bench needs Linux)")


# Each of these runs in its own process: (rows handled, seconds, peak MB).

def _read(url: str, last: int) -> tuple[int, float, float]:
    from console.audit.verify import iter_rows

    with _session(url) as session:
        started = time.perf_counter()
        rows = sum(1 for _ in iter_rows(session, last=last))
        return rows, time.perf_counter() - started, _peak_mb()


def _verify(url: str, last: int) -> tuple[int, float, float]:
    from console.audit.chain import verify_rows
    from console.audit.verify import iter_rows, verify_chain

    with _session(url) as session:
        started = time.perf_counter()
        if last is None:
            report = verify_chain(session)
        else:  # the same work over the first rows only
            report = verify_rows(iter_rows(session, last=last))
        if not report.ok:
            raise RuntimeError(f"the bench chain does not verify: {report.message}")
        return report.rows, time.perf_counter() - started, _peak_mb()


def _export(url: str, last: int, path: str) -> tuple[int, float, float]:
    from console.audit import Actor
    from console.audit.export import ExportWindow, export_log

    with _session(url) as session:
        started = time.perf_counter()
        result = export_log(session, actor=Actor.cli("bench"), signing_key=_key(),
                            window=ExportWindow(), max_rows=10**9, bounds=(1, last))
        with result.file, open(path, "wb") as out:
            while chunk := result.file.read(1 << 20):
                out.write(chunk)
        seconds = time.perf_counter() - started
        session.rollback()  # the export's own audit event would lengthen the chain
        return result.manifest["count"], seconds, _peak_mb()


def _offline(path: str) -> tuple[int, float, float]:
    from console.audit import offline

    started = time.perf_counter()
    report = offline.verify_export(path, _key().public_key())
    if not report.ok:
        raise RuntimeError(f"the bench export does not verify: {report.problem}")
    return report.manifest["count"], time.perf_counter() - started, _peak_mb()


def _unzip(path: str) -> tuple[int, float, float]:
    from console.audit import export_format as fmt

    started = time.perf_counter()
    with zipfile.ZipFile(path) as archive, archive.open(fmt.EVENTS_NAME) as events:
        rows = sum(1 for _ in events)
    return rows, time.perf_counter() - started, _peak_mb()


def _in_child(function, *args) -> tuple[int, float, float]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _fill(url: str, rows: int) -> float:
    from tests.support.audit_chain import write_chain

    started = time.perf_counter()
    with _session(url) as session:
        write_chain(session, _key(), rows=rows, batch=20_000, commit=True)
    return time.perf_counter() - started


def run(pg_url: str) -> list[Figure]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    rows = int(os.environ.get("BENCH_AUDIT_ROWS", "1000000"))
    tenth = max(rows // 10, 1)
    os.environ["BENCH_AUDIT_KEY"] = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()  # children inherit it
    with ScratchDatabase(pg_url) as url, tempfile.TemporaryDirectory() as scratch:
        print(f"  writing a {rows:,}-row chain…", file=sys.stderr, flush=True)
        fill_s = _fill(url, rows)
        print(f"  written in {fill_s:.0f} s", file=sys.stderr, flush=True)
        full, small = Path(scratch, "full.zip"), Path(scratch, "tenth.zip")
        measured = {}
        for name, function, args_full, args_small in (
                ("read", _read, (url, None), (url, tenth)),
                ("verify", _verify, (url, None), (url, tenth)),
                ("export", _export, (url, rows, str(full)), (url, tenth, str(small))),
                ("offline", _offline, (str(full),), (str(small),)),
                ("unzip", _unzip, (str(full),), (str(small),))):
            print(f"  {name}…", file=sys.stderr, flush=True)
            measured[name] = (_in_child(function, *args_full), _in_child(function, *args_small))
        size_mb = full.stat().st_size / 1e6
    return _figures(measured, rows, tenth, size_mb)


def _figures(measured, rows: int, tenth: int, size_mb: float) -> list[Figure]:
    def rate(name: str) -> float:
        handled, seconds, _peak = measured[name][0]
        if handled != rows:
            raise RuntimeError(f"{name} handled {handled:,} rows of {rows:,}")
        return handled / seconds

    figures = []
    for name, label, reference, reference_name in (
            ("verify", "audit verify in the database", "read", "plain ordered read"),
            ("export", f"audit export ({size_mb:,.0f} MB zip)", "read", "plain ordered read"),
            ("offline", "audit offline verify of the export", "unzip", "reading its lines")):
        value = rate(name)
        figures.append(Figure(f"{label}, {rows:,} rows", value, "rows/s",
                              reference=rate(reference), reference_name=reference_name,
                              target=f">= {TARGET_ROWS_S:,} rows/s",
                              met=value >= TARGET_ROWS_S))
    for name, label in (("verify", "audit verify"), ("export", "audit export"),
                        ("offline", "audit offline verify")):
        peak, peak_tenth = measured[name][0][2], measured[name][1][2]
        figures.append(Figure(f"{label} peak memory, {rows:,} rows", peak, "MB",
                              reference=peak_tenth, reference_name=f"{tenth:,} rows",
                              higher_is_better=False,
                              target=f"flat (<= {tenth:,}-row peak + {FLAT_ALLOWANCE_MB:.0f} MB)",
                              met=peak <= peak_tenth + FLAT_ALLOWANCE_MB))
    return figures
