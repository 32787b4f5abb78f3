"""Geometry of a check's history sparkline: one small bar per run, oldest left, for a
server-rendered SVG (no front-end charting). Failing bars are full height, ok bars low,
skipped bars a dot, so a flapping check reads at a glance."""

from __future__ import annotations

from dataclasses import dataclass

from console.checks.models import CheckResult, ResultStatus

WIDTH, HEIGHT, SLOTS = 120, 18, 30
_HEIGHTS = {ResultStatus.OK: 6, ResultStatus.FAILING: HEIGHT, ResultStatus.SKIPPED: 2}


@dataclass(frozen=True)
class Tick:
    x: int
    y: int
    width: int
    height: int
    status: str
    label: str


def ticks(history: list[CheckResult]) -> list[Tick]:
    step = WIDTH // SLOTS
    shown = history[-SLOTS:]
    offset = SLOTS - len(shown)  # right-aligned: the newest run is always at the right edge
    out = []
    for index, result in enumerate(shown):
        h = _HEIGHTS.get(result.status, 2)
        out.append(Tick((offset + index) * step, HEIGHT - h, step - 1, h, result.status,
                        f"{result.started_at:%H:%M:%S} UTC {result.status}"))
    return out
