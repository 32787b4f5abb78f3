"""The decisioning bench's step verdict (bench/decisioning.py): pure arithmetic over results
given here, no timing measured or asserted."""

from __future__ import annotations

from bench.decisioning import BUDGET_S, _step_figures


def _results(latencies_s: list[float], statuses: list[int] | None = None) -> dict[str, list]:
    statuses = statuses or [200] * len(latencies_s)
    return {"decisions": [(lat, status, "success", 0.0)
                          for lat, status in zip(latencies_s, statuses, strict=True)],
            "reference": [(0.001, 200, "", 0.0)] * 10,
            "ingest": [(0.01, 200, "stored", 0.0)] * 10}


def _by_name(figures):
    return {f.name.split(" @")[0]: f for f in figures}


def test_a_step_under_50_ms_with_nothing_over_the_budget_passes_and_carries_the_targets():
    figures, passed, _ = _step_figures(200, _results([0.01] * 100), 5, [5.0], 20, top=True)
    named = _by_name(figures)
    assert passed
    assert named["decision latency p99"].met is True
    assert named["answers over the budget"].met is True


def test_one_answer_over_the_budget_fails_the_step_even_with_a_low_p99():
    latencies = [0.01] * 199 + [BUDGET_S + 0.1]
    figures, passed, _ = _step_figures(200, _results(latencies), 5, [5.0], 20, top=True)
    named = _by_name(figures)
    assert not passed
    assert named["answers over the budget"].value == 1
    assert named["answers over the budget"].met is False


def test_a_p99_of_50_ms_or_more_fails_and_only_the_top_step_carries_targets():
    figures, passed, _ = _step_figures(20, _results([0.06] * 100), 5, [5.0], 20, top=False)
    assert not passed
    assert all(f.met is None for f in figures)


def test_an_answer_that_is_not_200_counts_against_the_step():
    figures, passed, _ = _step_figures(20, _results([0.01] * 10, [200] * 9 + [503]), 5, [5.0], 20,
                                       top=True)
    assert not passed
    assert _by_name(figures)["answers over the budget"].value == 1
