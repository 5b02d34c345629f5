"""health_gate's criteria: a sample judged by its conditions, a round by its samples, the gate by its rounds.

``judge`` applies a probe's ``failure_condition`` then ``success_condition`` to a measured sample; ``decide`` turns
the round outcomes so far into a decision (failed, passed, inconclusive) or None to keep measuring;
``validate_policy`` refuses a policy that could never decide; ``baseline_verdict`` compares a candidate with a
baseline measured in the same rounds (p95 latency, error ratio).
"""

from __future__ import annotations

import math
import typing as t
from dataclasses import dataclass, field

from ansible_collections.sophia.migrate.plugins.module_utils._health import (
    FAILURE,
    INCONCLUSIVE,
    SUCCESS,
    HealthConfigError,
    Policy,
    Sample,
)


@dataclass
class Decision:
    verdict: str
    reason: str
    rounds: int


@dataclass
class State:
    rounds: list[str] = field(default_factory=list)  # outcome per round

    @property
    def failures(self) -> int:
        return self.rounds.count(FAILURE)

    @property
    def inconclusives(self) -> int:
        return self.rounds.count(INCONCLUSIVE)

    @property
    def streak(self) -> int:
        n = 0
        for outcome in reversed(self.rounds):
            if outcome != SUCCESS:
                break
            n += 1
        return n


def round_outcome(samples: list[Sample]) -> str:
    outcomes = {s.outcome for s in samples}
    if FAILURE in outcomes:
        return FAILURE
    if INCONCLUSIVE in outcomes:
        return INCONCLUSIVE
    return SUCCESS


def decide(
    state: State, policy: Policy, exhausted: bool, held: bool = True, span: float = 0.0, why_exhausted: str = ""
) -> Decision | None:
    """The gate's decision after the rounds so far, or None to keep measuring.

    ``held``: with ``min_duration``, the current run of successful rounds spans it (and no round of the run is
    still running); ``span`` is that run's span in seconds so far; ``why_exhausted`` says why no round is left.
    """
    n = len(state.rounds)
    if state.failures >= policy.failure_limit:
        return Decision("failed", f"{state.failures} of {n} rounds failed (failure_limit {policy.failure_limit})", n)
    if state.streak >= policy.consecutive_successes and (not policy.min_duration or held):
        if policy.min_duration:
            return Decision(
                "passed",
                f"{state.streak} consecutive successful rounds over {span:.1f}s "
                f"(min_duration {policy.min_duration:g}s, required {policy.consecutive_successes} in a row)",
                n,
            )
        return Decision(
            "passed", f"{state.streak} consecutive successful rounds (required {policy.consecutive_successes})", n
        )
    if state.inconclusives >= policy.inconclusive_limit:
        return Decision(
            "inconclusive",
            f"{state.inconclusives} of {n} rounds were inconclusive (inconclusive_limit {policy.inconclusive_limit})",
            n,
        )
    if exhausted:
        if policy.min_duration:
            return Decision(
                "failed",
                f"the successful rounds in a row did not hold min_duration {policy.min_duration:g}s: "
                f"{why_exhausted or f'{n} rounds used up'} ({state.streak} successful in a row over {span:.1f}s; "
                f"{state.failures} failed, {state.inconclusives} inconclusive)",
                n,
            )
        return Decision(
            "failed",
            f"only {state.streak} consecutive successful rounds at the end of {n} rounds "
            f"(required {policy.consecutive_successes}; {state.failures} failed, "
            f"{state.inconclusives} inconclusive)",
            n,
        )
    return None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return round(ordered[rank], 3)


def summarize(samples: list[Sample]) -> dict[str, t.Any]:
    def figures(group: list[Sample]) -> dict[str, t.Any]:
        lat = [s.latency_ms for s in group if s.latency_ms is not None]
        return {
            "samples": len(group),
            "failures": sum(1 for s in group if s.outcome == FAILURE),
            "inconclusive": sum(1 for s in group if s.outcome == INCONCLUSIVE),
            "error_ratio": round(sum(1 for s in group if s.outcome == FAILURE) / len(group), 4) if group else None,
            "p50_ms": percentile(lat, 50),
            "p95_ms": percentile(lat, 95),
        }

    out = figures(samples)
    out["per_probe"] = {
        name: figures([s for s in samples if s.probe == name]) for name in sorted({s.probe for s in samples})
    }
    return out


# ---------------------------------------------------------------------------------------------- conditions


def _check_condition(cond: dict[str, t.Any], sample: Sample) -> list[str]:
    """Reasons why ``sample`` does NOT satisfy ``cond`` (empty list = satisfied)."""
    why = []
    if "status" in cond and sample.status not in cond["status"]:
        why.append(f"status {sample.status} not in {cond['status']}")
    if "max_latency_ms" in cond and (sample.latency_ms is None or sample.latency_ms > cond["max_latency_ms"]):
        why.append(f"latency {sample.latency_ms} ms > {cond['max_latency_ms']} ms")
    if "min_value" in cond and (sample.value is None or sample.value < cond["min_value"]):
        why.append(f"value {sample.value} < {cond['min_value']}")
    if "max_value" in cond and (sample.value is None or sample.value > cond["max_value"]):
        why.append(f"value {sample.value} > {cond['max_value']}")
    return why


def judge(sample: Sample, success: dict[str, t.Any], failure: dict[str, t.Any]) -> Sample:
    """Apply failure_condition, then success_condition, to a measured sample."""
    if sample.outcome != SUCCESS or sample.final:  # transport errors, no-data policy already decided
        return sample
    if failure and not _check_condition(failure, sample):
        sample.outcome = FAILURE
        sample.message = f"failure_condition met ({', '.join(f'{k}={v}' for k, v in failure.items())})"
        return sample
    reasons = _check_condition(success, sample) if success else []
    if reasons:
        sample.outcome = FAILURE
        sample.message = "; ".join(reasons)
    return sample


# ---------------------------------------------------------------------------------------------- the policy


def validate_policy(policy: Policy, probes: list[t.Any]) -> None:
    if not probes:
        raise HealthConfigError("probes must list at least one probe")
    if policy.interval < 0:
        raise HealthConfigError("interval must be >= 0 seconds")
    if policy.initial_delay < 0:
        raise HealthConfigError("initial_delay must be >= 0 seconds")
    if policy.count is None and policy.duration is None:
        raise HealthConfigError("one of count or duration is required")
    if policy.count is not None and policy.count < 1:
        raise HealthConfigError("count must be >= 1")
    if policy.duration is not None and policy.duration <= 0:
        raise HealthConfigError("duration must be > 0 seconds")
    if policy.failure_limit < 1 or policy.consecutive_successes < 1 or policy.inconclusive_limit < 1:
        raise HealthConfigError("failure_limit, consecutive_successes and inconclusive_limit must be >= 1")
    if policy.min_duration < 0:
        raise HealthConfigError("min_duration must be >= 0 seconds")
    if policy.min_duration and policy.duration is not None and policy.min_duration > policy.duration:
        raise HealthConfigError(
            f"min_duration ({policy.min_duration:g}s) is longer than duration ({policy.duration:g}s): the gate could "
            "never pass"
        )
    if policy.min_duration and policy.count is not None and 0 < policy.count * policy.interval < policy.min_duration:
        raise HealthConfigError(
            f"count {policy.count} rounds every {policy.interval:g}s cannot hold min_duration "
            f"{policy.min_duration:g}s: the gate could never pass"
        )


def baseline_verdict(
    samples: list[Sample], candidate: str, baseline: str, latency_tolerance: float, error_ratio_tolerance: float
) -> tuple[bool, str, dict[str, t.Any]]:
    cand = summarize([s for s in samples if s.probe == candidate])
    base = summarize([s for s in samples if s.probe == baseline])
    figures = {"candidate": cand, "baseline": base}
    problems = []
    if (
        cand["p95_ms"] is not None
        and base["p95_ms"] is not None
        and cand["p95_ms"] > base["p95_ms"] * (1 + latency_tolerance)
    ):
        problems.append(
            f"candidate p95 {cand['p95_ms']} ms > baseline p95 {base['p95_ms']} ms x {1 + latency_tolerance:g}"
        )
    if (cand["error_ratio"] or 0) > (base["error_ratio"] or 0) + error_ratio_tolerance:
        problems.append(
            f"candidate error ratio {cand['error_ratio']} > baseline {base['error_ratio']} + {error_ratio_tolerance:g}"
        )
    return (not problems, "; ".join(problems), figures)
