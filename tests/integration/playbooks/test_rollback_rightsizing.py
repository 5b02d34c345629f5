"""Phase 2C's right-sizing has an undo the rollback carries out (before: `restore_resources` stayed pending forever).

Runs playbooks/rollback.yml on the lab inventory with a private state directory whose ledger holds only the
phase2c/rightsizing step. No other undo is pending, so no play reaches a lab host: only the controller works.
"""

from __future__ import annotations

import json
import os
import subprocess

from ansible_collections.sophia.migrate.plugins.module_utils import _ledger

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.join(ROOT, ".venv", "bin")
ENV = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


def _rollback(state):
    return subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", "inventories/lab", "playbooks/rollback.yml",
         "-e", f"sophia_state_dir={state}", "-e", f"sophia_reports_dir={state}/reports"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, check=False)


def test_rollback_sets_the_rightsizing_aside_and_records_it(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    rightsizing = state / "rightsizing.yml"
    rightsizing.write_text("k8s_services_resource_overrides: {redis: {requests: {memory: 1Gi}}}\n")
    ledger = str(state / "ledger.json")
    _ledger.record(ledger, "phase2c/rightsizing", "done", "phase2c", {"approved": ["redis"]},
                   {"action": "restore_resources", "file": str(rightsizing)})
    res = _rollback(state)
    assert res.returncode == 0, res.stdout[-3000:]
    assert not rightsizing.exists()
    (aside,) = [p for p in os.listdir(state) if p.startswith("rightsizing.yml.rolled-back-")]
    assert "1Gi" in (state / aside).read_text()
    with open(ledger) as handle:
        entries = json.load(handle)["entries"]
    assert [e["status"] for e in entries if e["step"] == "phase2c/rightsizing"][-1] == "rolled_back"
    assert _ledger.pending_undo(_ledger.load(ledger)) == []
    again = _rollback(state)
    assert again.returncode == 0 and "nothing to undo" in again.stdout, again.stdout[-3000:]
    assert len([p for p in os.listdir(state) if p.startswith("rightsizing.yml")]) == 1
