"""The phase playbooks the rehearsal does not walk under load, run on the lab and run again: each second run
changes nothing (Phase 2C). Phase 1 and Phase 2A run with production's own settings on the staging lab instead
(tests/e2e/test_staging.py: check mode, a real run, a second run that changes nothing), which supersedes the lab-only
runs that were here.

Real: the lab (Docker engine, the lab node, Prometheus from Debian for Phase 2C's measurements).
"""

from __future__ import annotations

from conftest import changed_tasks, explain, ledger, playbook, recap_changed


def _phase_record(name: str) -> dict:
    return [e for e in ledger()["entries"] if e["step"] == name][-1]


def test_phase2c_measures_and_a_rerun_changes_nothing(lab):
    """Phase 2C measures live data (uptime over a sliding window, latency): a verdict may change between two
    runs seconds apart (a target that was down leaves the window). Then, and only then, the second run records
    the new verdicts in the phase's ledger entry; nothing else may change."""
    first = playbook("playbooks/phase2c.yml")
    assert first.returncode == 0, explain(first.stdout)
    before = _phase_record("phase2c")
    again = playbook("playbooks/phase2c.yml")
    assert again.returncode == 0, explain(again.stdout)
    after = _phase_record("phase2c")
    changed = changed_tasks(again.stdout)
    assert len(changed) == recap_changed(again.stdout), (changed, explain(again.stdout))
    if (after["status"], after["data"]) == (before["status"], before["data"]):
        assert changed == [], (changed, explain(again.stdout))
    else:
        assert changed == ["TASK [sophia.migrate.phase : Phase | record the phase in the ledger] -> localhost"], (
            before["data"], after["data"], changed, explain(again.stdout))
