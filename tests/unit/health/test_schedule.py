"""health_gate's schedule: concurrent probes bounded by their timeout, rounds on a fixed schedule, and min_duration.

The schedule tests run the real engine with real threads and the real clock (probes that hang are simulated by
sleeping, so no network); the min_duration tests use the simulated clock of test_policy.
"""

from __future__ import annotations

import threading
import time

import pytest
from test_policy import gate

from ansible_collections.sophia.migrate.plugins.module_utils import _health as h
from ansible_collections.sophia.migrate.plugins.module_utils import _health_rounds
from ansible_collections.sophia.migrate.plugins.modules import health_gate
from support.modules import run_module

S, F = h.SUCCESS, h.FAILURE
JITTER = 0.25


def hanging_gate(monkeypatch, probes, policy, hang):
    """Real run_gate; every probe sleeps ``hang(probe)`` seconds and then reports what a timed-out probe says."""
    starts: list[float] = []
    lock = threading.Lock()

    def fake_run_probe(probe, session, run_command):
        with lock:
            starts.append(time.monotonic())
        time.sleep(hang(probe))
        return h.Sample(probe["name"], F, message=f"no answer within {probe['timeout']}s")

    monkeypatch.setattr(_health_rounds, "run_probe", fake_run_probe)
    t0 = time.monotonic()
    result = _health_rounds.run_gate(probes, policy, None, None)
    return result, time.monotonic() - t0, [s - t0 for s in starts]


def test_probes_of_a_round_run_concurrently_and_rounds_keep_their_schedule(monkeypatch):
    # two probes that hang until their timeout (0.5 s), a round due every 0.2 s: one after another, a round took
    # 1.0 s and the next started after it (3 rounds = 3.0 s); now round k starts at k x 0.2 s whatever the others do
    probes = [{"name": n, "type": "tcp", "timeout": 0.5} for n in ("a", "b")]
    policy = h.Policy(interval=0.2, count=50, failure_limit=3)
    result, elapsed, starts = hanging_gate(monkeypatch, probes, policy, lambda p: p["timeout"])
    assert result["verdict"] == "failed" and result["rounds"] == 3
    schedule = (policy.failure_limit - 1) * policy.interval + 0.5
    assert elapsed <= schedule + JITTER, f"detected after {elapsed:.2f}s, schedule {schedule:.2f}s"
    assert elapsed <= policy.interval * policy.failure_limit + 0.5 + JITTER
    # the probes of round 1 started together, round 2 at 0.2 s, round 3 at 0.4 s
    firsts = sorted(starts)[:6]
    for k in range(3):
        pair = firsts[2 * k : 2 * k + 2]
        assert all(abs(s - k * policy.interval) < 0.1 for s in pair), starts


def test_a_probe_past_its_timeout_fails_at_the_timeout(monkeypatch):
    # a probe that does not honour its own timeout (a server trickling bytes, a slow resolver) held the round
    probes = [{"name": "stuck", "type": "tcp", "timeout": 0.2}]
    result, elapsed, _starts = hanging_gate(monkeypatch, probes, h.Policy(interval=1, count=1), lambda p: 2.0)
    assert result["verdict"] == "failed"
    assert elapsed < 0.2 + 0.05 + JITTER, f"took {elapsed:.2f}s"  # its timeout + PROBE_GRACE
    assert result["samples"][0]["message"] == "no answer within 0.2s"


def test_a_probe_that_raises_is_a_failed_sample(monkeypatch):
    def broken(probe, session, run_command):
        raise RuntimeError("boom")

    monkeypatch.setattr(_health_rounds, "run_probe", broken)
    result = _health_rounds.run_gate(
        [{"name": "p", "type": "tcp", "timeout": 1}], h.Policy(interval=0, count=1), None, None
    )
    assert result["verdict"] == "failed" and "probe error: RuntimeError" in result["reason"]


@pytest.mark.parametrize(
    ("outcomes", "policy", "verdict", "rounds", "at"),
    [
        # healthy: passes when the run spans min_duration (rounds at 0..4, pass at 5), not after the first round
        ([S] * 20, h.Policy(interval=1, duration=10, min_duration=5), "passed", 5, 5.0),
        # the production example: hold 300, interval 10 -> 30 rounds all passing, pass at 300 s
        ([S] * 40, h.Policy(interval=10, duration=300, min_duration=300), "passed", 30, 300.0),
        # a failed round restarts the hold (within failure_limit)
        ([F] + [S] * 20, h.Policy(interval=1, duration=10, failure_limit=2, min_duration=3), "passed", 4, 4.0),
        # fails fast at the failure limit, never waits for the hold
        ([S, S, F, F] + [S] * 20, h.Policy(interval=1, duration=10, failure_limit=2, min_duration=5), "failed", 4, 3.0),
        # the rounds left cannot hold min_duration any more: fails at once
        ([S, F] + [S] * 20, h.Policy(interval=1, duration=5, failure_limit=3, min_duration=5), "failed", 2, 1.0),
        # consecutive_successes still applies on top of the hold
        ([S] * 20, h.Policy(interval=1, count=20, consecutive_successes=8, min_duration=3), "passed", 8, 7.0),
    ],
)
def test_min_duration_is_a_hold(outcomes, policy, verdict, rounds, at):
    result, clock = gate(outcomes, policy)
    assert (result["verdict"], result["rounds"]) == (verdict, rounds), result["reason"]
    assert clock.now == pytest.approx(at, abs=0.05)
    if verdict == "passed":
        assert f"min_duration {policy.min_duration:g}s" in result["reason"]
    if rounds == 2:
        assert "after round 2 the rounds left by duration 5s cannot hold it any more" in result["reason"]


def test_without_min_duration_the_first_good_round_passes():
    result, clock = gate([S] * 10, h.Policy(interval=1, duration=10))
    assert result["verdict"] == "passed" and result["rounds"] == 1 and clock.now < 0.1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"duration": 5, "min_duration": -1}, "min_duration must be >= 0"),
        ({"duration": 5, "min_duration": 6}, "min_duration (6s) is longer than duration (5s)"),
        ({"count": 3, "interval": 1, "min_duration": 10}, "count 3 rounds every 1s cannot hold min_duration 10s"),
    ],
)
def test_min_duration_bad_values(args, message, capsys):
    res = run_module(health_gate, {"probes": [{"type": "tcp", "host": "h", "port": 1}], **args}, capsys)
    assert res["failed"] and message in res["msg"], res["msg"]


def test_back_to_back_rounds_hold_min_duration_too():
    # interval 0: rounds run back to back (each takes 0.01 s on the simulated clock) until the hold is over
    result, clock = gate([S] * 1000, h.Policy(interval=0, duration=1, min_duration=0.5))
    assert result["verdict"] == "passed" and 0.5 <= clock.now < 0.52
    assert 45 <= result["rounds"] <= 52
    # and back to back they stop at duration
    result, clock = gate([S] * 1000, h.Policy(interval=0, duration=0.3, consecutive_successes=999))
    assert result["verdict"] == "failed" and 0.3 <= clock.now < 0.32
