"""health_gate's rounds: the schedule that runs the probes and ``run_gate``, the loop that decides.

Rounds start on a fixed schedule (round k at ``t0 + k x interval``; with ``interval`` 0 back to back); the probes
of a round run concurrently, each bounded by its timeout; a slow round does not push the next one later (rounds
overlap); rounds are recorded in order; ``min_duration`` makes the pass a hold. See ``_health`` for the model.
"""

from __future__ import annotations

import math
import threading
import time
import typing as t
from dataclasses import asdict, dataclass

from ansible_collections.sophia.migrate.plugins.module_utils._health import FAILURE, SUCCESS, Policy, Sample
from ansible_collections.sophia.migrate.plugins.module_utils._health_criteria import (
    Decision,
    State,
    baseline_verdict,
    decide,
    round_outcome,
    summarize,
)
from ansible_collections.sophia.migrate.plugins.module_utils._health_probes import run_probe

PROBE_GRACE = 0.05  # seconds past a probe's timeout before the round stops waiting for it (its own timeout
# normally ends it first, with its own message)
EPSILON = 1e-6


@dataclass
class _Round:
    no: int  # 1-based
    offset: float  # start, seconds after t0
    deadlines: list[float]  # per probe, seconds after t0
    samples: list[Sample | None]

    def expire(self, probes: list[dict[str, t.Any]], now: float, wall: t.Callable[[], float]) -> None:
        for i, probe in enumerate(probes):
            if self.samples[i] is None and now >= self.deadlines[i]:
                self.samples[i] = Sample(
                    probe["name"],
                    FAILURE,
                    at=round(wall(), 3),
                    latency_ms=round(probe["timeout"] * 1000, 2),
                    message=f"no answer within {probe['timeout']}s",
                    round=self.no,
                )

    @property
    def done(self) -> bool:
        return all(s is not None for s in self.samples)


def _spawn_daemon(target: t.Callable[[], None]) -> None:
    # daemon: a probe still stuck past its timeout never holds the module's exit
    threading.Thread(target=target, daemon=True).start()


def _last_offset(policy: Policy) -> float | None:
    """Offset of the last round the schedule can start (interval > 0), None when unbounded or unknown."""
    if policy.interval <= 0:
        return None
    limits = []
    if policy.count is not None:
        limits.append((policy.count - 1) * policy.interval)
    if policy.duration is not None:
        limits.append(math.floor(policy.duration / policy.interval + EPSILON) * policy.interval)
    return min(limits) if limits else None


def _limits(policy: Policy) -> str:
    given = [f"count {policy.count}" if policy.count is not None else "", ""]
    if policy.duration is not None:
        given[1] = f"duration {policy.duration:g}s"
    return " and ".join(g for g in given if g)


class _Gate:
    """One run of the gate: the rounds launched, the samples and round outcomes so far, the current run of successes.

    Everything runs under ``cond``: probe tasks record their sample and wake the main loop, which sleeps in ``wait``.
    """

    def __init__(
        self,
        probes: list[dict[str, t.Any]],
        policy: Policy,
        session: t.Any,
        run_command: t.Callable[..., tuple[int, str, str]],
        clock: t.Callable[[], float],
        wall: t.Callable[[], float],
        baseline: dict[str, t.Any] | None,
        progress: t.Callable[[str], None] | None,
        spawn: t.Callable[[t.Callable[[], None]], None] | None,
        wait: t.Callable[[float], t.Any] | None,
    ) -> None:
        self.probes, self.policy, self.session, self.run_command = probes, policy, session, run_command
        self.clock, self.wall, self.baseline, self.progress = clock, wall, baseline, progress
        self.cond = threading.Condition()
        self.spawn = spawn or _spawn_daemon
        self.wait = wait or self.cond.wait
        self.state = State()
        self.samples: list[Sample] = []
        self.launched: list[_Round] = []
        self.decided = 0  # rounds recorded in state, in order
        self.run_start: float | None = None  # offset of the first round of the current run of successes
        self.last_offset = _last_offset(policy)
        self.t0 = clock()

    def run(self) -> Decision:
        """Rounds until a decision."""
        decision: Decision | None = None
        with self.cond:
            while decision is None:
                decision = self._step()
        return decision

    def gated(self, samples: list[Sample]) -> list[Sample]:
        """The samples the gate judges: all but the baseline probe's."""
        return [s for s in samples if not (self.baseline and s.probe == self.baseline["probe"]["name"])]

    def _step(self) -> Decision | None:
        """Fail the probes past their deadline, record the rounds that are complete, then go on (or decide)."""
        now = self.clock() - self.t0
        for rnd in self.launched[self.decided:]:
            rnd.expire(self.probes, now, self.wall)
        decision = self._record_complete_rounds()
        if decision is not None:
            return decision
        return self._advance(now)

    def _record_complete_rounds(self) -> Decision | None:
        """Record the complete rounds in order (round k once rounds 0..k are complete); a decision they lead to."""
        decision = None
        while decision is None and self.decided < len(self.launched) and self.launched[self.decided].done:
            rnd = self.launched[self.decided]
            self.decided += 1
            batch = t.cast("list[Sample]", rnd.samples)
            self.samples.extend(batch)
            self.state.rounds.append(round_outcome(self.gated(batch)))
            if self.state.rounds[-1] != SUCCESS:
                self.run_start = None
            elif self.run_start is None:
                self.run_start = rnd.offset
            if self.progress:
                self.progress(
                    f"round {rnd.no}: {self.state.rounds[-1]} ({', '.join(f'{s.probe}={s.outcome}' for s in batch)})"
                )
            # a hold (min_duration) passes only below, once it spans min_duration
            decision = decide(self.state, self.policy, exhausted=False, held=False)
        return decision

    def _advance(self, now: float) -> Decision | None:
        """End a hold, decide when no round is left, start the round that is due, or wait for what comes next."""
        policy = self.policy
        in_flight = self.launched[self.decided:]
        pending = [r.deadlines[i] for r in in_flight for i, s in enumerate(r.samples) if s is None]
        span = now - self.run_start if self.run_start is not None else 0.0
        holding = bool(policy.min_duration) and self.state.streak >= policy.consecutive_successes
        hold_due = self.run_start + policy.min_duration if holding and self.run_start is not None else None
        if hold_due is not None and now >= hold_due - EPSILON:
            if not in_flight:
                return decide(self.state, policy, exhausted=False, held=True, span=span)
            # the hold is over: no new round; the rounds still running must pass too
            self.wait(max(0.0, min(pending) - (self.clock() - self.t0)))
            return None
        next_no = len(self.launched) + 1
        # on the schedule; with interval 0 back to back (the next one once none is running)
        next_offset = (next_no - 1) * policy.interval if policy.interval > 0 else (math.inf if in_flight else now)
        more = (policy.count is None or next_no <= policy.count) and (
            policy.duration is None or next_offset <= policy.duration + EPSILON or next_offset == math.inf
        )
        decision = self._out_of_rounds(in_flight, span, hold_due, next_offset, more)
        if decision is not None:
            return decision
        if more and now >= next_offset - EPSILON:
            self._launch(next_no, next_offset if policy.interval > 0 else now, now)
            return None
        wake = list(pending)
        if more and next_offset != math.inf:
            wake.append(next_offset)
        if hold_due is not None:
            wake.append(hold_due)
        if not wake:  # not reached: something is always due; never spin
            wake.append(now + 0.05)
        self.wait(max(0.0, min(wake) - (self.clock() - self.t0)))
        return None

    def _out_of_rounds(
        self, in_flight: list[_Round], span: float, hold_due: float | None, next_offset: float, more: bool
    ) -> Decision | None:
        """The failure when the rounds left (``more``: a next round, at ``next_offset``) can no longer decide."""
        policy = self.policy
        if policy.min_duration and self.last_offset is not None:
            # the earliest a hold can start: the current run's start, or else the next round's
            if self.run_start is not None:
                earliest = self.run_start
            elif in_flight:
                earliest = in_flight[0].offset
            else:
                earliest = next_offset if more else math.inf
            if earliest + policy.min_duration > self.last_offset + policy.interval + EPSILON:
                return decide(
                    self.state,
                    policy,
                    exhausted=True,
                    span=span,
                    why_exhausted=f"after round {len(self.state.rounds)} the rounds left by {_limits(policy)} "
                    "cannot hold it any more",
                )
        last_start = self.launched[-1].offset if self.launched else -math.inf
        if not more and not in_flight and (hold_due is None or hold_due > last_start + policy.interval + EPSILON):
            # no round left; a hold that ends within one interval of the last round is still waited for
            return decide(self.state, policy, exhausted=True, span=span)
        return None

    def _launch(self, no: int, offset: float, now: float) -> None:
        """Start round ``no`` (at ``offset`` after t0): one task per probe, each with its deadline."""
        rnd = _Round(
            no,
            offset,
            [now + pr["timeout"] + PROBE_GRACE for pr in self.probes],
            [None] * len(self.probes),
        )
        self.launched.append(rnd)
        for i, probe in enumerate(self.probes):
            self.spawn(self._probe_task(rnd, i, probe))

    def _probe_task(self, rnd: _Round, i: int, probe: dict[str, t.Any]) -> t.Callable[[], None]:
        def task() -> None:
            try:
                sample = run_probe(probe, self.session, self.run_command)
            except Exception as exc:  # a probe that breaks is a failed probe, never a lost round
                sample = Sample(probe["name"], FAILURE, message=f"probe error: {exc.__class__.__name__}")
            sample.at = round(self.wall(), 3)
            sample.round = rnd.no
            with self.cond:
                if rnd.samples[i] is None:  # not already failed at its deadline
                    rnd.samples[i] = sample
                self.cond.notify_all()

        return task

    def result(self, decision: Decision, started: float) -> dict[str, t.Any]:
        """The module result (without 'changed'): the verdict, checked against the baseline, and the figures."""
        verdict, reason = decision.verdict, decision.reason
        result: dict[str, t.Any] = {}
        if self.baseline:
            ok, why, result["baseline"] = baseline_verdict(
                self.samples,
                self.baseline["candidate"],
                self.baseline["probe"]["name"],
                self.baseline["latency_tolerance"],
                self.baseline["error_ratio_tolerance"],
            )
            if verdict == "passed" and not ok:
                verdict, reason = "failed", f"compared with the baseline: {why}"
        if verdict != "passed":
            last_bad = next((s for s in reversed(self.samples) if s.outcome != SUCCESS), None)
            if last_bad is not None:
                reason += f"; last problem: {last_bad.probe}: {last_bad.message or last_bad.outcome}"
        result.update(
            {
                "passed": verdict == "passed",
                "verdict": verdict,
                "reason": reason,
                "rounds": decision.rounds,
                "round_outcomes": self.state.rounds,
                "samples": [
                    {k: v for k, v in asdict(s).items() if v is not None and v != "" and k != "final"}
                    for s in self.samples
                ],
                "summary": summarize(self.gated(self.samples)),
                "duration_s": round(self.clock() - started, 3),
            }
        )
        return result


def run_gate(
    probes: list[dict[str, t.Any]],
    policy: Policy,
    session: t.Any,
    run_command: t.Callable[..., tuple[int, str, str]],
    clock: t.Callable[[], float] = time.monotonic,
    sleep: t.Callable[[float], None] = time.sleep,
    wall: t.Callable[[], float] = time.time,
    baseline: dict[str, t.Any] | None = None,
    progress: t.Callable[[str], None] | None = None,
    spawn: t.Callable[[t.Callable[[], None]], None] | None = None,
    wait: t.Callable[[float], t.Any] | None = None,
) -> dict[str, t.Any]:
    """Run rounds until a decision; returns the module result (without 'changed').

    Rounds start at t0 + k x interval, their probes run concurrently (``spawn`` starts one; a daemon thread by
    default) and each is bounded by its timeout; the main loop sleeps in ``wait`` (the condition's wait by
    default: a finished probe wakes it) until the next round is due, a probe's deadline or the end of a hold.
    """
    started = clock()
    if policy.initial_delay:
        sleep(policy.initial_delay)
    gate = _Gate(probes, policy, session, run_command, clock, wall, baseline, progress, spawn, wait)
    return gate.result(gate.run(), started)
