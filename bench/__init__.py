"""Benchmarks: each module measures a figure of the console and a reference in the same run.

`make bench` (python -m bench) runs every module listed in bench.__main__.MODULES on
PostgreSQL, prints one table (figure, value, reference, ratio) and writes bench/results/*.json.
A module exposes `run(pg_url: str) -> list[bench.common.Figure]`.
"""
