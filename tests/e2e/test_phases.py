"""The phase playbooks the rehearsal does not walk under load, run on the lab and run again: each second run
changes nothing (Phase 2C). Phase 1 and Phase 2A run with production's own settings on the staging lab instead
(tests/e2e/test_staging.py: check mode, a real run, a second run that changes nothing), which supersedes the lab-only
runs that were here.

Real: the lab (Docker engine, the lab node, Prometheus from Debian for Phase 2C's measurements).
"""

from __future__ import annotations

from conftest import explain, ledger, playbook, recap_changed


def test_phase2c_measures_and_a_rerun_changes_nothing(lab):
    first = playbook("playbooks/phase2c.yml")
    assert first.returncode == 0, explain(first.stdout)
    assert any(e["step"].startswith("phase2c") for e in ledger()["entries"])
    again = playbook("playbooks/phase2c.yml")
    assert again.returncode == 0 and recap_changed(again.stdout) == 0, explain(again.stdout)
