"""A hold is a hold: under load, each share of the walk stays live for traffic_shift_hold_seconds at least.

Real HAProxy, nginx and wrk (the fixtures of test_traffic_shift.py). The splitter's live weights are polled through
its Runtime API (ShareWatcher), so the dwell time of each share is measured on HAProxy itself, not on the
playbook's output. Before min_duration the gate passed at its first good round and a 3 s hold left the 5, 25 and
50 % shares live 1.6-1.9 s each.
"""

from __future__ import annotations

import re
import time

from test_traffic_shift import _insert_splitter, _ledger
from traffic_support import Load, ShareWatcher, run_playbook, summary


def dwell_times(changes, minimum=0.2):
    """Seconds each share was live: segments shorter than ``minimum`` (a pair of weights moves in one Runtime
    API line; the poller may catch the moment in between) are dropped and neighbours of one share merged."""
    segments = []
    for i, (start, share) in enumerate(changes):
        end = changes[i + 1][0] if i + 1 < len(changes) else time.time()
        if end - start < minimum:
            continue
        if segments and segments[-1][0] == share:
            segments[-1][2] = end
        else:
            segments.append([share, start, end])
    return [(share, end - start) for share, start, end in segments]


def test_each_share_is_live_for_the_hold_with_every_round_passing(stack):
    hold = stack["vars"]["traffic_shift_hold_seconds"]
    interval = stack["vars"]["traffic_shift_gate"]["interval"]
    assert (hold, interval) == (3, 0.5)
    _insert_splitter(stack)
    watcher = ShareWatcher(stack["socket"], "route_mcp_context")
    watcher.start()
    time.sleep(0.5)
    load = Load(stack["work"], f"https://127.0.0.1:{stack['https']}/api/context/x").start()
    res = run_playbook(stack["work"], stack["vars"], verbosity="-v")
    time.sleep(1)
    result = load.stop()
    changes = watcher.stop()
    dwell = dwell_times(changes)
    print(f"\nhold {hold}s under load ({summary(result)}): " + ", ".join(f"{s}% {d:.2f}s" for s, d in dwell))
    assert res.returncode == 0, res.stdout[-4000:]
    assert result["failed"] == 0, result["raw"]
    assert [s for s, _d in dwell] == [0, 5, 25, 50, 100], changes
    for share, seconds in dwell:
        if share in (5, 25, 50):
            assert seconds >= hold, f"{share}% was live {seconds:.2f}s, the hold is {hold}s: {dwell}"
    # every step's gate passed on a hold of rounds all passing: the gate's duration is the hold (3 s), its rounds
    # start at 0, 0.5 ... 2.5 s and it passes at 3 s, so a run of 6 successful rounds over 3 s is every round
    holds = re.findall(r"(\d+) consecutive successful rounds over ([\d.]+)s \(min_duration 3s", res.stdout)
    assert len(holds) == 4, res.stdout[-4000:]  # 5, 25, 50 and 100 %
    for rounds, span in holds:
        assert int(rounds) == hold / interval and float(span) >= hold, holds
    done = [e["step"] for e in _ledger(stack)["entries"]
            if e["status"] == "done" and e["step"].startswith("traffic/mcp-context/")]
    assert done == [f"traffic/mcp-context/{s}" for s in (5, 25, 50, 100)]
