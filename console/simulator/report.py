"""What a run did and what the console answered: thread-safe counters, a summary, a table.

The summary is a plain dict (stable keys, JSON-ready) so the demo, the benchmark suite and the
tests read the same figures the operator sees in the table.

Terms: a *message* is one webhook-id (its retries and duplicate deliveries are the same
message); a *delivery* is one HTTP POST of a message; *acknowledged* means a message got a 2xx
(for an authorization request: HTTP 200 with a valid answer within the deadline). Ack latency
is the round trip of every delivery, measured at the simulator. Requests that are not FINCI's
(bad signatures, malformed bodies) are counted apart, so a 4xx among FINCI's own deliveries
always means the console refused something it should have accepted.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from console.simulator.scenarios import Answer, BadKind


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _latency(values: Sequence[float]) -> dict[str, float | int | None]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {
        "count": len(values),
        "p50": ms(percentile(values, 0.50)),
        "p99": ms(percentile(values, 0.99)),
        "max": ms(max(values) if values else None),
    }


def _status_class(status: int | None) -> str:
    return "no_response" if status is None else f"{status // 100}xx"


class Report:
    def __init__(
        self,
        *,
        scenario: str,
        seed: int,
        run_id: str,
        deadline_s: float,
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.run_id = run_id
        self.deadline_s = deadline_s
        self._monotonic = monotonic
        self._started = monotonic()
        self._finished: float | None = None
        self._ended = "running"
        self._lock = threading.Lock()
        self._by_type: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._answers: Counter[str] = Counter()
        self._advices: Counter[str] = Counter()
        self._bad: Counter[str] = Counter()
        self._bad_kinds: Counter[str] = Counter()
        self._ack_latency: list[float] = []
        self._answer_latency: list[float] = []

    # --- recording (called from many threads) -------------------------------------------------

    def _add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def message(self, label: str) -> None:
        """One new message (webhook-id) created for delivery."""
        with self._lock:
            self._counts["sent"] += 1
            self._by_type[label] += 1

    def delivery(
        self, status: int | None, latency_s: float, *, retry: bool = False, duplicate: bool = False
    ) -> None:
        """One HTTP delivery of a FINCI message, whatever its outcome."""
        with self._lock:
            self._statuses[_status_class(status)] += 1
            self._counts["deliveries"] += 1
            self._counts["retries"] += retry
            self._counts["duplicates"] += duplicate
            self._ack_latency.append(latency_s)

    def acknowledged(self) -> None:
        self._add("acknowledged")

    def gave_up(self) -> None:
        """Still not acknowledged after the last retry: FINCI stops trying."""
        self._add("gave_up")

    def abandoned(self) -> None:
        """Retries cut short because the run was stopped."""
        self._add("abandoned")

    def held(self) -> None:
        self._add("held")

    def delayed(self) -> None:
        self._add("delayed")

    def skipped(self) -> None:
        """A follow-up not sent because its authorization was declined (FINCI would not)."""
        self._add("skipped")

    def answer(self, answer: Answer, latency_s: float, expected: Answer | None = None) -> None:
        with self._lock:
            self._answers[answer.value] += 1
            self._answer_latency.append(latency_s)
            if answer in (Answer.SUCCESS, Answer.ERROR):
                self._counts["acknowledged"] += 1
            if expected is not None:
                self._counts["expectations_checked"] += 1
                self._counts["unexpected_answers"] += answer is not expected

    def duplicate_answer(self, original: Answer, duplicate: Answer) -> None:
        """A duplicate authorization request must get the same answer as the first delivery."""
        decided = (Answer.SUCCESS, Answer.ERROR)
        if original in decided and duplicate in decided and original is not duplicate:
            self._add("duplicate_answer_mismatches")

    def advice(self, response_code: str) -> None:
        with self._lock:
            self._advices[response_code] += 1

    def bad(self, kind: BadKind, status: int | None) -> None:
        with self._lock:
            self._bad_kinds[kind.value] += 1
            self._bad["sent"] += 1
            if status is not None and 400 <= status < 500:
                self._bad["rejected_4xx"] += 1
            elif status is not None and 200 <= status < 300:
                self._bad["accepted"] += 1
            else:
                self._bad["other"] += 1

    def finish(self, ended: str = "completed") -> None:
        """Freeze the elapsed time; ``ended`` says how (completed, duration, interrupted...)."""
        with self._lock:
            if self._finished is None:
                self._finished = self._monotonic()
                self._ended = ended

    # --- reading ------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        with self._lock:
            end = self._finished if self._finished is not None else self._monotonic()
            counts = self._counts
            answers = {a.value: self._answers[a.value] for a in Answer}
            summary: dict[str, Any] = {
                "scenario": self.scenario,
                "seed": self.seed,
                "run_id": self.run_id,
                "deadline_s": self.deadline_s,
                "elapsed_s": round(end - self._started, 3),
                "ended": self._ended,
                "sent": counts["sent"],
                "acknowledged": counts["acknowledged"],
                "gave_up": counts["gave_up"],
                "abandoned": counts["abandoned"],
                "skipped": counts["skipped"],
                "by_type": dict(sorted(self._by_type.items())),
                "deliveries": {
                    "total": counts["deliveries"],
                    **{k: self._statuses[k] for k in ("2xx", "3xx", "4xx", "5xx", "no_response")},
                    "retries": counts["retries"],
                    "duplicates": counts["duplicates"],
                    "held": counts["held"],
                    "delayed": counts["delayed"],
                },
                "answers": {
                    **answers,
                    "total": sum(answers.values()),
                    "in_time": answers["success"] + answers["error"],
                },
                "advices": dict(sorted(self._advices.items())),
                "duplicate_answer_mismatches": counts["duplicate_answer_mismatches"],
                "expectations": {
                    "checked": counts["expectations_checked"],
                    "unexpected": counts["unexpected_answers"],
                },
                "bad_requests": {
                    **{k: self._bad[k] for k in ("sent", "rejected_4xx", "accepted", "other")},
                    "by_kind": dict(sorted(self._bad_kinds.items())),
                },
                "ack_latency_ms": _latency(self._ack_latency),
                "answer_latency_ms": _latency(self._answer_latency),
            }
        summary["problems"] = problems(summary)
        return summary


def problems(summary: dict[str, Any]) -> list[str]:
    """What in a summary means the console misbehaved (the CLI exits 1 when any)."""
    found = []
    if summary["deliveries"]["4xx"]:
        found.append(f"{summary['deliveries']['4xx']} deliveries of FINCI messages got a 4xx")
    if summary["gave_up"]:
        found.append(f"{summary['gave_up']} messages never acknowledged after all retries")
    if summary["bad_requests"]["accepted"]:
        found.append(f"{summary['bad_requests']['accepted']} bad requests were accepted (2xx)")
    if summary["bad_requests"]["other"]:
        found.append(f"{summary['bad_requests']['other']} bad requests got neither 2xx nor 4xx")
    if summary["duplicate_answer_mismatches"]:
        found.append(
            f"{summary['duplicate_answer_mismatches']} duplicate requests answered differently"
        )
    if summary["expectations"]["unexpected"]:
        found.append(f"{summary['expectations']['unexpected']} answers not the expected one")
    return found


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def render_table(summary: dict[str, Any]) -> str:
    """The summary as a short aligned table for a terminal."""
    d, a, b = summary["deliveries"], summary["answers"], summary["bad_requests"]
    ack, ans = summary["ack_latency_ms"], summary["answer_latency_ms"]
    advices = "  ".join(f"{code} {n}" for code, n in summary["advices"].items()) or "none"
    rows = [
        ("run", f"{summary['scenario']}  seed {summary['seed']}  run-id {summary['run_id']}  "
                f"deadline {summary['deadline_s']:g} s  elapsed {summary['elapsed_s']:.2f} s  "
                f"({summary['ended']})"),
        ("messages", f"sent {summary['sent']}  acknowledged {summary['acknowledged']}  "
                     f"gave up {summary['gave_up']}  abandoned {summary['abandoned']}  "
                     f"skipped {summary['skipped']}"),
        ("deliveries", f"total {d['total']}  2xx {d['2xx']}  4xx {d['4xx']}  5xx {d['5xx']}  "
                       f"other {d['3xx']}  no response {d['no_response']}"),
        ("messiness", f"retries {d['retries']}  duplicates {d['duplicates']}  "
                      f"out of order {d['held']}  delayed {d['delayed']}"),
        ("answers", f"success {a['success']}  error {a['error']}  timeout {a['timeout']}  "
                    f"invalid {a['invalid']}  (in time {a['in_time']}/{a['total']})"),
        ("advices", advices),
        ("duplicates", f"answer mismatches {summary['duplicate_answer_mismatches']}"),
        ("expected", f"checked {summary['expectations']['checked']}  "
                     f"unexpected {summary['expectations']['unexpected']}"),
        ("bad requests", f"sent {b['sent']}  rejected 4xx {b['rejected_4xx']}  "
                         f"accepted {b['accepted']}  other {b['other']}"),
        ("ack latency", f"p50 {_ms(ack['p50'])}  p99 {_ms(ack['p99'])}  max {_ms(ack['max'])}  "
                        f"(n={ack['count']})"),
        ("answer latency", f"p50 {_ms(ans['p50'])}  p99 {_ms(ans['p99'])}  "
                           f"max {_ms(ans['max'])}  (n={ans['count']})"),
        ("problems", "; ".join(summary["problems"]) or "none"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)
