import json

from console.simulator.report import Report, percentile, problems, render_table
from console.simulator.scenarios import Answer, BadKind


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7], 0.99) == 7
    assert percentile([], 0.5) is None


def _report():
    ticks = iter([0.0, 2.5])
    report = Report(scenario="happy-path", seed=3, run_id="abc", deadline_s=3.0,
                    monotonic=lambda: next(ticks))
    for label in ("authorization_request", "authorization_advice", "presentment"):
        report.message(label)
    report.delivery(200, 0.010)
    report.answer(Answer.SUCCESS, 0.010, expected=Answer.SUCCESS)
    report.delivery(503, 0.020)
    report.delivery(200, 0.030, retry=True)
    report.acknowledged()
    report.delivery(200, 0.040, duplicate=True)
    report.delivery(200, 0.005)
    report.acknowledged()
    report.advice("Approved")
    report.bad(BadKind.WRONG_SECRET, 401)
    report.bad(BadKind.NOT_JSON, 400)
    report.finish("completed")
    return report


def test_the_summary_counts_messages_deliveries_answers_and_latency():
    summary = _report().summary()
    assert summary["elapsed_s"] == 2.5 and summary["ended"] == "completed"
    assert summary["sent"] == 3 and summary["acknowledged"] == 3
    assert summary["by_type"] == {"authorization_advice": 1, "authorization_request": 1,
                                  "presentment": 1}
    assert summary["deliveries"] == {"total": 5, "2xx": 4, "3xx": 0, "4xx": 0, "5xx": 1,
                                     "no_response": 0, "retries": 1, "duplicates": 1,
                                     "held": 0, "delayed": 0}
    assert summary["answers"] == {"success": 1, "error": 0, "timeout": 0, "invalid": 0,
                                  "total": 1, "in_time": 1}
    assert summary["ack_latency_ms"] == {"count": 5, "p50": 20.0, "p99": 40.0, "max": 40.0}
    assert summary["bad_requests"] == {"sent": 2, "rejected_4xx": 2, "accepted": 0, "other": 0,
                                       "by_kind": {"not_json": 1, "wrong_secret": 1}}
    assert summary["problems"] == []
    json.dumps(summary)  # JSON-ready as is


def test_problems_name_what_the_console_got_wrong():
    report = _report()
    report.bad(BadKind.TAMPERED_BODY, 200)
    report.duplicate_answer(Answer.SUCCESS, Answer.ERROR)
    report.duplicate_answer(Answer.SUCCESS, Answer.TIMEOUT)  # not a contradiction
    report.answer(Answer.SUCCESS, 0.01, expected=Answer.ERROR)
    report.delivery(400, 0.01)
    report.gave_up()
    found = problems(report.summary())
    assert len(found) == 5
    assert report.summary()["duplicate_answer_mismatches"] == 1


def test_the_table_shows_every_figure_asked_for():
    table = render_table(_report().summary())
    for text in ("happy-path", "sent 3", "acknowledged 3", "success 1", "timeout 0",
                 "4xx 0", "5xx 1", "duplicates 1", "p50 20.0 ms", "p99 40.0 ms",
                 "max 40.0 ms", "rejected 4xx 2", "problems        none"):
        assert text in table, text


def test_an_empty_run_renders():
    report = Report(scenario="steady", seed=1, run_id="x", deadline_s=3)
    report.finish("interrupted")
    table = render_table(report.summary())
    assert "p50 -" in table and "(interrupted)" in table
