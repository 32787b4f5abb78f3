"""`python -m bench [module ...]`: run the benchmarks, print one table, write JSON results."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from bench.common import DEFAULT_PG, table, write_results

# Each module measures its figures against a reference taken in the same run.
MODULES = ("ingest", "decisioning", "lifecycle", "drain", "panels", "audit")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("modules", nargs="*", default=list(MODULES))
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG),
                        help="PostgreSQL server URL (the benchmark creates its own database)")
    args = parser.parse_args(argv)
    everything, missing = [], []
    for name in args.modules:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            missing.append(name)
            continue
        print(f"running {name}…", file=sys.stderr, flush=True)
        figures = module.run(args.pg)
        path = write_results(name, figures)
        print(f"{name}: results in {path}", file=sys.stderr)
        everything.extend(figures)
    if everything:
        print(table(everything))
        write_results("all", everything)
    if missing:
        print(f"not available yet: {', '.join(missing)}", file=sys.stderr)
    unmet = [f.name for f in everything if f.met is False]
    if unmet:
        print(f"targets not met: {', '.join(unmet)}", file=sys.stderr)
    return 1 if unmet or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
