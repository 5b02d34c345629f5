"""health_gate: decide from real probes whether a migration step may proceed.

The model follows Argo Rollouts' AnalysisRun and Flagger's canary analysis, but the probes reach
anything the controller can reach (the Compose host and the K3s cluster alike):

- A *round* runs every probe once, concurrently (one thread per probe), each bounded by its own
  ``timeout``: a probe with no sample at its timeout is a failure then. A probe sample is ``success``,
  ``failure`` or ``inconclusive`` (``failure_condition`` is checked first, then ``success_condition``; a
  query that returns no data follows the probe's explicit ``on_no_data`` policy; a timeout or connection
  error is a failure).
- Rounds start on a fixed schedule: round k (from 0) at ``t0 + k x interval`` (t0 = after
  ``initial_delay``). A slow round does not push the next one later: when a round is due while earlier
  ones still run, it starts anyway with fresh probes (rounds overlap). With ``interval`` 0 rounds run
  back to back. Rounds are counted in order (round k is decided once rounds 0..k are complete).
  So an endpoint failing from t0 fails the gate by ``(failure_limit - 1) x interval + timeout``,
  and one that starts failing at any moment t by ``t + failure_limit x interval + timeout``.
- A round fails if any probe failed; it is inconclusive if none failed but one was inconclusive.
- The gate **fails** as soon as ``failure_limit`` rounds failed, **passes** as soon as
  ``consecutive_successes`` rounds in a row succeeded, and is **inconclusive** once
  ``inconclusive_limit`` rounds were inconclusive. When ``count`` rounds or ``duration`` seconds are
  used up without a decision, it fails (the required run of successes never came); a flapping target
  therefore never passes.
- ``min_duration`` makes the pass a hold: the run of successful rounds must also span ``min_duration``
  seconds (from the start of its first round); at that moment the gate starts no new round, waits for
  the rounds still running and passes when they passed too. A failed round restarts the hold (it still
  counts towards ``failure_limit``); when the rounds left (``count``/``duration``) can no longer hold
  ``min_duration``, the gate fails right away.
- Baseline mode compares the candidate with a baseline endpoint measured in the same rounds:
  p95 latency within ``latency_tolerance`` and error ratio within ``error_ratio_tolerance``.

Everything here is plain Python: probes are functions returning a ``Sample``; the clock and sleep are
injectable so the policy engine is tested without a network.

This file holds what the gate's jobs share (the outcomes, ``Sample``, ``Policy``, ``HealthConfigError``); the jobs
live beside it, one file each: ``_health_probe_spec`` (a probe's options, checked and completed),
``_health_probes`` (running one probe), ``_health_criteria`` (judging samples, rounds and the baseline) and
``_health_rounds`` (the schedule of rounds, ``run_gate``).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

SUCCESS, FAILURE, INCONCLUSIVE = "success", "failure", "inconclusive"


class HealthConfigError(Exception):
    """Bad options; the message names the probe and the option."""


@dataclass
class Sample:
    probe: str
    outcome: str
    at: float = 0.0
    latency_ms: float | None = None
    status: t.Any = None
    value: float | None = None
    message: str = ""
    round: int = 0
    final: bool = False  # decided already (no-data policy); conditions do not apply
    certificate: dict[str, t.Any] | None = None  # tls probes: the served certificate (sha256, issuer, not_after)


@dataclass
class Policy:
    interval: float = 5.0
    count: int | None = None
    duration: float | None = None
    initial_delay: float = 0.0
    failure_limit: int = 1
    consecutive_successes: int = 1
    inconclusive_limit: int = 3
    min_duration: float = 0.0
